"""Real OpenAI-compatible CPU servers for the `real_llm` tests, from the cache `.ci/llm_servers.sh` builds.

Two servers run the same small instruction-tuned GGUF model (Qwen2.5-Coder-0.5B-Instruct, Q4):
  - "llama-cpp-python": `python -m llama_cpp.server` from its own venv (one request at a time);
  - "llama-server": llama.cpp's own server (parallel slots; the context `-c` is split between them,
    so `-c` must be >= slots x the longest prompt + answer, ~1.2k tokens for a labeling call).

Each server runs in its own process group on 127.0.0.1 and a free port; it is ready when
GET /v1/models answers 200 (polled against a deadline), and it is stopped by its process group.
When the cache is not built the fixtures skip with the command that builds it, so `make test`
passes without it; with RECSYS_REAL_LLM_REQUIRED=1 (set by .ci/run after a successful build) a
missing server fails instead of skipping, so a broken build cannot hide behind skips.

Use the fixture `real_llm_server` (parametrized over both kinds, one server alive at a time), or
`start_llm_server(kind, ...)` as a context manager for a server with other options.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

KINDS = ("llama-cpp-python", "llama-server")
MODEL_FILE = "qwen2.5-coder-0.5b-instruct-q4.gguf"
BUILD_HINT = "build it with `bash .ci/llm_servers.sh` (~20 min the first time, seconds when cached)"
READY_TIMEOUT_S = 180.0
THREADS = int(os.environ.get("RECSYS_LLM_THREADS", "2"))


def cache_dir() -> Path:
    env = os.environ.get("RECSYS_LLM_CACHE", "").strip()
    return Path(env) if env else Path.home() / ".cache" / "recsys-assets" / "llm"


def model_path() -> Path:
    return cache_dir() / "models" / MODEL_FILE


def server_executable(kind: str) -> Path:
    if kind == "llama-cpp-python":
        return cache_dir() / "pyserver-venv" / "bin" / "python"
    if kind == "llama-server":
        return cache_dir() / "bin" / "llama-server"
    raise ValueError(f"unknown server kind {kind!r}; expected one of {KINDS}")


def missing_reason(kind: str) -> str | None:
    """Why `kind` cannot run from the cache (None when it can)."""
    missing = [str(p) for p in (model_path(), server_executable(kind)) if not p.is_file()]
    if not missing:
        return None
    return f"{kind} not built ({', '.join(missing)} missing); {BUILD_HINT}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(kind: str, port: int, *, slots: int, ctx_per_slot: int, alias: str) -> list[str]:
    """The argv that serves the cached model as `alias` on 127.0.0.1:port."""
    exe, model = str(server_executable(kind)), str(model_path())
    if kind == "llama-cpp-python":
        # One request at a time (no slots): n_ctx is the whole window of that one request.
        # chatml-function-calling is the chat format that honours tools/tool_choice for a
        # chatml model such as Qwen; response_format json_object + schema works with it too.
        return [
            exe,
            "-m",
            "llama_cpp.server",
            "--model",
            model,
            "--model_alias",
            alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(ctx_per_slot),
            "--n_threads",
            str(THREADS),
            "--chat_format",
            "chatml-function-calling",
        ]
    return [
        exe,
        "--model",
        model,
        "--alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-np",
        str(slots),
        "-c",
        str(slots * ctx_per_slot),
        "-t",
        str(THREADS),
        "--no-webui",
        "--jinja",
    ]


@dataclass
class LlmServer:
    """A running server: `base_url` ends in /v1 (what ChatOpenAI's base_url wants)."""

    kind: str
    base_url: str
    model: str
    pid: int
    log_path: Path
    slots: int
    ctx_per_slot: int
    models_seen: list[str] = field(default_factory=list)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def log_offset(self) -> int:
        return len(self.log_path.read_text(errors="replace"))

    def chat_calls(self, since: int = 0) -> tuple[int, int]:
        """(answered, refused) chat completions since log offset `since`, counted from the log.

        llama-cpp-python: uvicorn's access lines (200 vs 4xx/5xx). llama-server: one timing line per
        finished generation (it logs no access line at its default verbosity, so a refusal there
        counts as nothing: refused is always 0).
        """
        text = self.log_path.read_text(errors="replace")[since:]
        if self.kind == "llama-cpp-python":
            statuses = re.findall(r'"POST /v1/chat/completions HTTP/1\.1" (\d{3})', text)
            return statuses.count("200"), sum(1 for s in statuses if s != "200")
        return len(re.findall(r"print_timing: .*total time =", text)), 0


def _get_models(base_url: str) -> list[str] | None:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=5) as resp:  # noqa: S310 (http://127.0.0.1, a server the test started)
            if resp.status != 200:
                return None
            return [m.get("id", "") for m in json.load(resp).get("data", [])]
    except (urllib.error.URLError, OSError, ValueError):
        return None  # not listening yet, or 503 while the model loads


def _stop_group(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM the server's process group, wait for it, SIGKILL the group if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def start_llm_server(
    kind: str,
    *,
    slots: int = 2,
    ctx_per_slot: int = 4096,
    alias: str = "qwen2.5-coder-0.5b-instruct",
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> Iterator[LlmServer]:
    """Start `kind` on a free port, yield it once /v1/models answers, stop its process group.

    Raises RuntimeError (with the server's log tail) when it exits or is not ready in time.
    """
    reason = missing_reason(kind)
    if reason:
        raise FileNotFoundError(reason)
    port = _free_port()
    log_fd, log_name = tempfile.mkstemp(prefix=f"recsys-{kind}-", suffix=".log")
    cmd = server_command(kind, port, slots=slots, ctx_per_slot=ctx_per_slot, alias=alias)
    with os.fdopen(log_fd, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LlmServer(
        kind=kind,
        base_url=f"http://127.0.0.1:{port}/v1",
        model=alias,
        pid=proc.pid,
        log_path=Path(log_name),
        slots=slots,
        ctx_per_slot=ctx_per_slot,
    )
    ok = False
    try:
        deadline = time.monotonic() + ready_timeout_s
        while (models := _get_models(server.base_url)) is None:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{kind} exited with code {proc.returncode} before it was "
                    f"ready:\n{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{kind} did not answer /v1/models within "
                    f"{ready_timeout_s:.0f}s:\n{server.log_tail()}"
                )
            time.sleep(0.2)  # poll interval, not synchronisation: the loop checks the condition
        server.models_seen = models
        yield server
        ok = True
    finally:
        _stop_group(proc)
        if ok:  # on a failure the log stays, and its tail is in the error
            server.log_path.unlink(missing_ok=True)


def _required() -> bool:
    return os.environ.get("RECSYS_REAL_LLM_REQUIRED", "").strip() in ("1", "true", "yes")


def skip_unless_built(kind: str) -> None:
    """pytest.skip (or fail, under RECSYS_REAL_LLM_REQUIRED=1) when `kind` is not in the cache."""
    reason = missing_reason(kind)
    if reason:
        if _required():
            pytest.fail(f"RECSYS_REAL_LLM_REQUIRED=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session", params=KINDS)
def real_llm_server(request) -> Iterator[LlmServer]:
    """Each real server in turn (session scope: one start per kind, one alive at a time)."""
    kind = request.param
    skip_unless_built(kind)
    with start_llm_server(kind) as server:
        yield server
