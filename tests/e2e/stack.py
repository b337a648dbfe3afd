"""Start the real Dagster webserver and daemon as subprocesses, and stop them by PID.

Each server runs in its own session (process group) so that stopping it also stops the code
server and run workers it spawned; `dagster dev` started with `&` ignores SIGTERM, so we never
rely on it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from recsys_assets.instance import ensure_dagster_yaml, ensure_storage, project_settings

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
    # An operator's instance file (e.g. deploy/dagster.yaml) instead of the project's settings.
    instance_yaml: Path | None = None
    # A workspace file loading the location from a gRPC code server this stack starts first
    # (deploy/workspace.yaml; its port is replaced by a free one); None: `-m recsys_assets`.
    workspace_yaml: Path | None = None
    # Instance settings merged into the project's for this stack, section by section (e.g. a
    # shorter run-monitoring poll interval, so a test waits seconds, not minutes, for it).
    instance_settings: dict | None = None

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
        if self.instance_yaml is not None:
            self.dagster_home.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.instance_yaml, self.dagster_home / "dagster.yaml")
        else:
            assert ensure_dagster_yaml(self.dagster_home) == []  # the project's instance settings
            if self.instance_settings:
                self._merge_instance_settings(self.instance_settings)
        ensure_storage(self.dagster_home)  # as `make ui` does: the two servers must not race on it
        target = ["-m", "recsys_assets"]
        if self.workspace_yaml is not None:
            target = ["-w", str(self._start_code_server(timeout))]
        self._spawn(
            "webserver",
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.port), *target],
        )
        self._spawn("daemon", [str(BIN / "dagster-daemon"), "run", *target])
        wait_until(self._ready, timeout, f"dagster-webserver on {self.url}\n{self.tail()}")

    def _merge_instance_settings(self, settings: dict) -> None:
        """The project's dagster.yaml with these values put in; the project's sections they touch
        are then the only ones that differ from its settings."""
        path = self.dagster_home / "dagster.yaml"
        instance = yaml.safe_load(path.read_text())
        for section, values in settings.items():
            instance[section] = {**instance.get(section, {}), **values}
        path.write_text(yaml.safe_dump(instance, sort_keys=False))
        touched = [key for key in project_settings() if key in settings]
        assert ensure_dagster_yaml(self.dagster_home) == touched

    def _start_code_server(self, timeout: float) -> Path:
        """`dagster code-server start` on a free port; returns the workspace file pointing at it."""
        assert self.workspace_yaml is not None
        grpc_port = free_port()
        workspace = yaml.safe_load(self.workspace_yaml.read_text())
        [entry] = workspace["load_from"]
        entry["grpc_server"]["port"] = grpc_port
        rendered = self.dagster_home / "workspace.yaml"
        rendered.write_text(yaml.safe_dump(workspace))
        self._spawn(
            "code-server",
            [
                str(BIN / "dagster"),
                "code-server",
                "start",
                "-h",
                "127.0.0.1",
                "-p",
                str(grpc_port),
                "-m",
                "recsys_assets",
            ],
        )
        wait_until(
            lambda: self._alive() and _code_loaded(grpc_port),
            timeout,
            f"the code server on port {grpc_port} to load recsys_assets\n{self.tail()}",
            interval=1.0,
        )
        return rendered

    def _alive(self) -> bool:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a Dagster process exited early:\n{self.tail()}")
        return True

    def _ready(self) -> bool:
        self._alive()
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


def _code_loaded(port: int) -> bool:
    """The code server answers with the loaded location (the proxy answers before it has)."""
    from dagster._grpc.client import DagsterGrpcClient

    try:
        DagsterGrpcClient(port=port, host="127.0.0.1").list_repositories()
    except Exception:  # noqa: BLE001 (not up yet: connection refused, or still loading)
        return False
    return True


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
