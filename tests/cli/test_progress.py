"""The CLI progress bar: the rate counts only the work of this process, also after a resume."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

import pmoe_cli.progress as progress_module
from pmoe_cli.progress import ProgressBar


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress_module.time, "perf_counter", fake)
    return fake


def test_resumed_run_rate_counts_only_steps_of_this_process(clock, capsys):
    bar = ProgressBar("training", unit="steps")
    bar.fancy = False  # plain lines, as in a log file
    bar(total=100, advance=90, message="training")  # resumed at step 90 of 100
    clock.now += 10.0
    bar(advance=5, message="loss 1.0")  # 5 steps in 10 s here: 0.5 steps/s (not 95 / 10 = 9.5)
    assert capsys.readouterr().err.strip() == "[95/100] loss 1.0 (0.50 steps/s)"
    clock.now += 10.0
    bar(advance=5, message="loss 0.9")
    assert capsys.readouterr().err.strip() == "[100/100] loss 0.9 (0.50 steps/s)"


def test_fresh_run_rate_and_terminal_bar_start_at_the_resumed_step(clock):
    fresh = ProgressBar("training", unit="steps")
    fresh.fancy = False
    fresh(total=10)
    clock.now += 4.0
    fresh(advance=2)
    assert (fresh.done, fresh.resumed_at) == (2, 0)

    bar = ProgressBar("training", unit="steps")
    bar.fancy = True
    bar.console = Console(file=io.StringIO(), force_terminal=True)
    bar(total=100, advance=40)
    clock.now += 8.0
    bar(advance=4, message="loss 2.0")
    task = bar.bar.tasks[0]
    assert task.completed == 44 and task.fields["rate"] == "0.50"  # 4 steps in 8 s, not 44 / 8
    bar.stop()
