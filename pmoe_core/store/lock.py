"""The exclusive writer lock: one object inside the store naming its holder (pid, host, time).

Two writers appending to one store would interleave rows and corrupt offsets, so a writer refuses a held store.
Local stores create the lock with O_EXCL (atomic); fsspec stores check-then-write, which is enough to catch the
usual mistake (a second job on the same output) but is not a distributed mutex. A lock left by a dead process
on this host is taken over with a warning; one from another host must be removed by hand (its pid means nothing
here).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from dataclasses import asdict, dataclass

import fsspec

from pmoe_core.errors import StoreError
from pmoe_core.sources.base import Warn, noop_warn
from pmoe_core.store.layout import LOCK_KEY, is_url


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    time: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.time}"

    def is_dead_here(self) -> bool:
        """True when the holder ran on this host and its process no longer exists."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def _me() -> LockHolder:
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return LockHolder(pid=os.getpid(), host=socket.gethostname(), time=now)


class WriterLock:
    """Held from `acquire` until `release`; the object lives at `<store>/pmoe-writer.lock`."""

    def __init__(self, store_url: str):
        self.store_url = store_url
        self.fs, root = fsspec.core.url_to_fs(store_url)
        self.path = f"{root.rstrip('/')}/{LOCK_KEY}"
        self.held = False

    def _create(self, holder: LockHolder) -> bool:
        data = json.dumps(asdict(holder)).encode()
        if not is_url(self.store_url):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return True
        if self.fs.exists(self.path):
            return False
        self.fs.pipe_file(self.path, data)
        return True

    def holder(self) -> LockHolder | None:
        """Who holds the lock now (None if nobody; an unreadable lock object counts as held by 'unknown')."""
        try:
            raw = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        try:
            info = json.loads(raw)
            return LockHolder(pid=int(info["pid"]), host=str(info["host"]), time=str(info["time"]))
        except (ValueError, KeyError, TypeError):
            return LockHolder(pid=-1, host="unknown", time="unknown")

    def acquire(self, warn: Warn = noop_warn) -> "WriterLock":
        """Take the lock or raise StoreError naming the holder; take over a stale lock of a dead local pid."""
        me = _me()
        if self._create(me):
            self.held = True
            return self
        holder = self.holder()
        if holder is not None and holder.is_dead_here():
            warn(f"{self.store_url}: taking over a stale writer lock of {holder.describe()} (process is gone)")
            self.fs.rm_file(self.path)
            if self._create(me):
                self.held = True
                return self
            holder = self.holder()
        who = holder.describe() if holder else "another writer"
        raise StoreError(
            f"store is being written by {who}; wait for it to finish, or if that process is gone for good, "
            f"delete {self.path}",
            self.store_url,
        )

    def release(self) -> None:
        if self.held:
            try:
                self.fs.rm_file(self.path)
            except FileNotFoundError:
                pass
            self.held = False
