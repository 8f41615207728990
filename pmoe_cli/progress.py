"""The CLI's progress callback: a rich bar (rate, ETA) on a terminal, plain lines when stderr is a log file."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressBar:
    """Implements pmoe_core.progress.Progress. `label` leads the bar, `unit` names what the rate counts.

    The rate counts only the work done by this process: a resumed run starts the bar at its earlier count
    (`total=..., advance=done`), and those steps took no time here.
    """

    def __init__(self, label: str, unit: str = "items", every: int = 1):
        self.console = Console(stderr=True)
        self.fancy = sys.stderr.isatty()
        self.label, self.unit, self.every = label, unit, max(1, every)
        self.total: int | None = None
        self.done = 0
        self.resumed_at = 0  # work done before this process started (resume); not part of the rate
        self.started = time.perf_counter()
        self.bar: Progress | None = None
        self.task = None

    def __call__(self, *, total: int | None = None, advance: int = 0, message: str | None = None) -> None:
        if total is not None:
            self.total = total
            self.started = time.perf_counter()
            self.done = self.resumed_at = advance  # resuming: start the bar where the work stands
            if self.fancy and self.bar is None:
                self.bar = Progress(
                    TextColumn(self.label), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]} " + self.unit + "/s"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), TextColumn("{task.description}"), console=self.console,
                )
                self.bar.start()
                # completed= at creation: no progress sample, so rich's ETA speed ignores the resumed steps too
                self.task = self.bar.add_task("", total=total, completed=advance, rate="-")
            elif self.bar is not None:
                self.bar.update(self.task, total=total, completed=advance)
            return
        if advance:
            self.done += advance
            rate = (self.done - self.resumed_at) / max(time.perf_counter() - self.started, 1e-9)
            if self.bar is not None:
                self.bar.update(self.task, advance=advance, description=message or "", rate=f"{rate:.2f}")
            elif self.done % self.every == 0 or self.done == self.total:
                self.say(f"[{self.done}/{self.total}] {message or ''} ({rate:.2f} {self.unit}/s)")

    def say(self, line: str) -> None:
        """One line on stderr: above the bar on a terminal, unwrapped in logs."""
        if self.fancy:
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def report_training(result, export, export_checkpoint) -> None:
    """The closing line of a `plan train` / `qa train` run, and the slim copy when `--export` asked for one.
    `result` is the trainer's result (steps, losses, seconds, checkpoint, interrupted)."""
    import typer

    final = result.losses[-1] if result.losses else float("nan")
    state = "stopped early" if result.interrupted else "done"
    typer.echo(f"{state}: step {result.steps}, last loss {final:.4f}, {result.seconds:.0f} s; wrote {result.checkpoint}")
    if export is not None:
        typer.echo(f"exported {export_checkpoint(result.checkpoint, export)}")

