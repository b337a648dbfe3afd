"""Bookkeeping for runs of the `recsys` CLI that needs no Dagster import (so `recsys alerts` and
`recsys summary` stay fast): one rebuild at a time, and a marker per running run.

- `rebuild_lock`: the warehouse admits one writer, so a second `recsys materialize`/`demo` on the
  same RECSYS_HOME stops at once with `Busy` (the CLI exits with BUSY_EXIT_CODE) instead of
  queueing behind the first on the DuckDB lock.
- A marker ($RECSYS_HOME/cli_runs/<run_id>.json: pid, its start time, host) lives while a run
  does. A marker whose process is gone means the run was killed (kill -9, out of memory, power
  loss): `dead_markers` finds them and the CLI marks those runs failed and alerts them.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

BUSY_EXIT_CODE = 75  # EX_TEMPFAIL (sysexits.h): try again later


class Busy(RuntimeError):
    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


@contextmanager
def rebuild_lock(home: Path) -> Iterator[None]:
    """Hold $RECSYS_HOME/.rebuild.lock or raise Busy naming the holder (the kernel releases the
    lock when its process dies, so a killed rebuild never blocks the next one)."""
    path = Path(home) / ".rebuild.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise Busy(fh.read().strip() or "a process that has just started") from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
            fh.flush()
            yield
        finally:
            fh.truncate(0)
            fcntl.flock(fh, fcntl.LOCK_UN)


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc; None where /proc is not available."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ("X", "") if Path("/proc/self/stat").exists() else None
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may contain spaces
    return fields[0], fields[19]


def process_start(pid: int) -> str | None:
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def process_alive(pid: int, started: str | None) -> bool:
    """Is `pid` still the process that wrote the marker (not a zombie, not a reused pid)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, now_started = stat
    return state not in ("Z", "X") and (not started or now_started == started)


@dataclass(frozen=True)
class RunMarker:
    run_id: str
    pid: int
    pid_start: str | None
    host: str
    dagster_home: str

    @classmethod
    def for_this_process(cls, run_id: str, dagster_home: Path) -> RunMarker:
        pid = os.getpid()
        return cls(run_id, pid, process_start(pid), socket.gethostname(), str(dagster_home))

    def path(self, home: Path) -> Path:
        return markers_dir(home) / f"{self.run_id}.json"

    def write(self, home: Path) -> None:
        target = self.path(home)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, target)

    def remove(self, home: Path) -> None:
        self.path(home).unlink(missing_ok=True)

    def is_dead(self) -> bool:
        """Only a run on this host can be checked; one elsewhere is never declared dead."""
        return self.host == socket.gethostname() and not process_alive(self.pid, self.pid_start)


def markers_dir(home: Path) -> Path:
    return Path(home) / "cli_runs"


def dead_markers(home: Path) -> list[RunMarker]:
    found = []
    for path in sorted(markers_dir(home).glob("*.json")):
        try:
            marker = RunMarker(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue  # being written, or not ours
        if marker.is_dead():
            found.append(marker)
    return found
