"""A throwaway PostgreSQL cluster for tests: initdb in a temp dir, start, hand out databases, stop.

Uses the server binaries of Debian's `postgresql` package (/usr/lib/postgresql/<ver>/bin, or
RECSYS_PG_BIN). PostgreSQL refuses to run as root, so as root every server command runs as the
`postgres` OS user (runuser) and the temp dir is handed to that user. The server listens on
127.0.0.1 (a free port) and on a unix socket inside the temp dir only; TCP logins need a
password (scram), so tests also see a URL that carries a secret.

`PgCluster.start()` raises `PgUnavailable` with the reason when no server can be had; the pytest
fixture turns that into a skip.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class PgUnavailable(RuntimeError):
    """No PostgreSQL server could be started here; the message says why."""


def find_bin_dir() -> Path | None:
    """RECSYS_PG_BIN, else the newest /usr/lib/postgresql/*/bin holding initdb and pg_ctl."""
    env = os.environ.get("RECSYS_PG_BIN", "").strip()
    candidates = [Path(env)] if env else []
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    versions.sort(
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0, reverse=True
    )
    candidates += [Path(p) for p in versions]
    for c in candidates:
        if (c / "initdb").is_file() and (c / "pg_ctl").is_file() and (c / "postgres").is_file():
            return c
    return None


def _scratch_dir() -> str:
    shm = "/dev/shm"
    try:
        st = os.statvfs(shm)
        if os.access(shm, os.W_OK) and st.f_bavail * st.f_frsize > 1 << 30:
            return shm
    except OSError:
        pass
    return "/tmp"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.root: Path | None = None
        self.port: int | None = None
        self.password = "pw-" + secrets.token_hex(12)
        self.user = "postgres"
        self._as_postgres = os.geteuid() == 0
        self._pid: int | None = None

    # -- helpers -----------------------------------------------------------------------------
    def _cmd(self, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        return ["runuser", "-u", "postgres", "--", *cmd] if self._as_postgres else cmd

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            self._cmd(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C"},
        )

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def url(self, database: str = "postgres", *, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> PgCluster:
        if self.bin_dir is None:
            raise PgUnavailable(
                "no PostgreSQL server binaries (initdb, pg_ctl) under "
                "/usr/lib/postgresql/*/bin; install Debian's `postgresql` package "
                "or set RECSYS_PG_BIN"
            )
        if self._as_postgres:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PgUnavailable(
                    "running as root but there is no `postgres` OS user to run the server as"
                ) from None
            if shutil.which("runuser") is None:
                raise PgUnavailable("running as root and `runuser` is missing")
        # A short path of its own: the unix socket path must stay < 108 bytes and the postgres
        # user must be able to reach it (pytest's tmp dirs are private to root). tmpfs when there
        # is one: a cluster's thousands of files are slow to delete on a disk mounted `discard`.
        self.root = Path(tempfile.mkdtemp(prefix="recsys-pg-", dir=_scratch_dir()))
        try:
            if self._as_postgres:
                os.chown(self.root, pw.pw_uid, pw.pw_gid)
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.password + "\n")
            if self._as_postgres:
                os.chown(pwfile, pw.pw_uid, pw.pw_gid)
            pwfile.chmod(0o600)
            res = self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "--no-sync",
                "--no-instructions",
            )
            pwfile.unlink()
            if res.returncode != 0:
                raise PgUnavailable(f"initdb failed: {(res.stderr or res.stdout).strip()[-800:]}")
            last_err = ""
            for _ in range(3):  # a free port can be taken between probing and binding
                self.port = _free_port()
                opts = (
                    f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                    "-c max_connections=50 -c shared_buffers=32MB -c max_wal_size=64MB "
                    "-c min_wal_size=32MB -c dynamic_shared_memory_type=posix"
                )
                res = self._run(
                    "pg_ctl",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.root / "log"),
                    "-o",
                    opts,
                    "-w",
                    "-t",
                    "30",
                    "start",
                )
                if res.returncode == 0:
                    break
                log = self.root / "log"
                last_err = (res.stderr or res.stdout).strip() + (
                    "\n" + log.read_text(errors="replace")[-800:] if log.exists() else ""
                )
            else:
                raise PgUnavailable(f"pg_ctl start failed: {last_err[-1200:]}")
            pidfile = self.data_dir / "postmaster.pid"
            self._pid = int(pidfile.read_text().split("\n", 1)[0])
        except PgUnavailable:
            self.stop()
            raise
        except (OSError, subprocess.SubprocessError) as exc:
            self.stop()
            raise PgUnavailable(f"cannot start PostgreSQL: {type(exc).__name__}: {exc}") from None
        return self

    def create_database(self, name: str) -> str:
        """A fresh empty database; returns its URL (with the password)."""
        res = self._run(
            "createdb",
            "-h",
            str(self.root),
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-T",
            "template0",
            name,
        )
        if res.returncode != 0:
            raise RuntimeError(f"createdb {name} failed: {res.stderr.strip()}")
        return self.url(name)

    def stop(self) -> None:
        """pg_ctl stop -m fast (then immediate, then SIGKILL), wait for the postmaster, rm -rf."""
        try:
            if self.root is not None and (self.data_dir / "postmaster.pid").exists():
                for mode in ("fast", "immediate"):
                    try:
                        res = self._run(
                            "pg_ctl",
                            "-D",
                            str(self.data_dir),
                            "-m",
                            mode,
                            "-w",
                            "-t",
                            "30",
                            "stop",
                            timeout=40,
                        )
                    except subprocess.TimeoutExpired:
                        continue
                    if res.returncode == 0:
                        break
            if self._pid is not None:
                deadline = time.monotonic() + 10
                while _alive(self._pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if _alive(self._pid):  # last resort: only the postmaster this cluster started
                    os.kill(self._pid, signal.SIGKILL)
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def postmaster_pid(self) -> int | None:
        return self._pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a reaped-or-zombie check: a zombie postmaster (not our child) cannot linger for long
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
