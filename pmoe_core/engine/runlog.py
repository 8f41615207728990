"""Training logs that outlive the terminal: JSON lines for scripts, TensorBoard event files for eyes."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any


class RunLog:
    """Append-only `log.jsonl` + TensorBoard events in one run folder. Only rank 0 should create one."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.run_dir / "log.jsonl", "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tb"))

    def log(self, step: int, event: str = "train", **values: Any) -> None:
        record = {"time": round(time.time(), 3), "event": event, "step": step, **values}
        self._jsonl.write(json.dumps(record, allow_nan=False, default=_plain) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for key, value in _scalars(values):
                self._tb.add_scalar(f"{event}/{key}", value, step)

    def log_config(self, step: int, config: dict[str, Any], **values: Any) -> None:
        """The run's effective configuration (and command line): a `config` record in log.jsonl, and TensorBoard
        text (config/effective) rather than scalars."""
        record = {"time": round(time.time(), 3), "event": "config", "step": step, "config": config, **values}
        self._jsonl.write(json.dumps(record, allow_nan=False, default=_plain) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            text = json.dumps({"config": config, **values}, indent=2, allow_nan=False, default=_plain)
            self._tb.add_text("config/effective", "```\n" + text + "\n```", step)

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _scalars(values: dict[str, Any], prefix: str = ""):
    """Flatten nested dicts/lists of numbers into (tag, float) pairs for TensorBoard."""
    for key, value in values.items():
        tag = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _scalars(value, tag + "/")
        elif isinstance(value, (list, tuple)):
            yield from _scalars({str(i): v for i, v in enumerate(value)}, tag + "/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            yield tag, float(value)


def read_log(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "log.jsonl"
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
