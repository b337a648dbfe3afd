"""Start the real Dagster webserver and daemon as subprocesses, and stop them by PID.

Each server runs in its own session (process group) so that stopping it also stops the code
server and run workers it spawned; `dagster dev` started with `&` ignores SIGTERM, so we never
rely on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from recsys_assets.instance import ensure_dagster_yaml, ensure_storage

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.25):
    """Poll a condition with a deadline (the condition, not the clock, is the synchronisation)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class DagsterStack:
    dagster_home: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, args: list[str]) -> None:
        log = self.dagster_home / f"{name}.log"
        self.logs.append(log)
        fh = log.open("wb")
        self.procs.append(
            subprocess.Popen(
                args,
                cwd=REPO,
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def start(self, timeout: float = 120) -> None:
        assert ensure_dagster_yaml(self.dagster_home) == []  # the project's instance settings
        ensure_storage(self.dagster_home)  # as `make ui` does: the two servers must not race on it
        self._spawn(
            "webserver",
            [
                str(BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-m",
                "recsys_assets",
            ],
        )
        self._spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-m", "recsys_assets"])
        wait_until(self._ready, timeout, f"dagster-webserver on {self.url}\n{self.tail()}")

    def _ready(self) -> bool:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a Dagster process exited early:\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as r:  # noqa: S310 (http://127.0.0.1, a server the test started)
                return r.status == 200
        except OSError:
            return False

    def tail(self, n: int = 40) -> str:
        out = []
        for log in self.logs:
            if log.exists():
                lines = log.read_text(errors="replace").splitlines()[-n:]
                out.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self, timeout: float = 30) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # Children that left the group (code server, run workers) still carry our DAGSTER_HOME:
        # ask them to stop, then insist, and wait until they are really gone.
        home = str(self.dagster_home)
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 15.0)):
            for pid in processes_with_env("DAGSTER_HOME", home):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            try:
                wait_until(
                    lambda: not processes_with_env("DAGSTER_HOME", home),
                    grace,
                    "leftover processes",
                )
                return
            except TimeoutError:
                continue


def processes_with_env(name: str, value: str) -> list[int]:
    """PIDs whose environment has name=value (Linux /proc)."""
    needle = f"{name}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids
