"""Shared benchmark helpers: the machine, peak memory of a process tree, medians, a timed rebuild.

Peak memory is sampled from /proc (psutil is used when installed) every ~0.5 s over the whole
process tree, because the pipeline may start child processes and ru_maxrss only sees one of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
KEY_PACKAGES = (
    "dagster",
    "duckdb",
    "pandas",
    "pyarrow",
    "numpy",
    "lightgbm",
    "mlflow",
    "langchain-openai",
)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

try:  # optional
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None


def median(values) -> float:
    vals = [float(v) for v in values]
    return statistics.median(vals) if vals else float("nan")


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100); enough for latency tables."""
    vals = sorted(float(v) for v in values)
    if not vals:
        return float("nan")
    idx = min(len(vals) - 1, max(0, round(q / 100.0 * len(vals) + 0.5) - 1))
    return vals[idx]


def machine() -> dict:
    """CPU model, cores, memory, OS, Python and key package versions (for the report header)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = float("nan")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
                break
    except OSError:
        pass
    versions = {}
    for pkg in KEY_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "-"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
        "load_avg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


# --- process-tree memory -------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_bytes(root: int) -> int:
    """Sum of RSS of `root` and all its descendants right now."""
    if psutil is not None:
        try:
            p = psutil.Process(root)
            procs = [p, *p.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):  # the process ended meanwhile
                total += proc.memory_info().rss
        return total
    kids = _children_map()
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _rss_bytes(pid)
        stack.extend(kids.get(pid, ()))
    return total


class TreeMemorySampler:
    """Samples the RSS of a process tree in a thread; `.peak_bytes` is the high-water mark.

    `.samples` are (seconds since start, bytes); `.epoch0` is the start as a Unix time, so samples
    can be matched to the Dagster event log's timestamps (memory per step)."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval = pid, interval
        self.peak_bytes = 0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.perf_counter()
        self.epoch0 = time.time()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = tree_rss_bytes(self.pid)
            self.samples.append((time.perf_counter() - self._t0, rss))
            self.peak_bytes = max(self.peak_bytes, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class CommandResult:
    returncode: int
    seconds: float
    peak_rss_bytes: int
    stdout: str
    stderr: str
    memory_samples: list = field(default_factory=list)
    epoch0: float = 0.0  # Unix time of the first memory sample's clock zero
    # User + system CPU seconds of the process and every descendant it waited for: on a shared
    # machine the figure to compare (wall seconds grow with the load, CPU seconds much less).
    cpu_seconds: float = 0.0

    @property
    def peak_rss_gib(self) -> float:
        return self.peak_rss_bytes / 1024**3


def run_measured(
    cmd: list[str],
    env: dict | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    log_path: Path | None = None,
) -> CommandResult:
    """Run `cmd` as a subprocess, timing it and sampling its process tree's RSS every 0.5 s."""
    import resource

    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with contextlib.ExitStack() as stack:
        out_fh: IO[str] | int = (
            stack.enter_context(open(log_path, "w")) if log_path else subprocess.PIPE
        )
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=out_fh,
            stderr=subprocess.STDOUT if log_path else subprocess.PIPE,
            text=True,
        )
        with TreeMemorySampler(proc.pid) as sampler:
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
        seconds = time.perf_counter() - t0
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    if log_path:
        stdout, stderr = Path(log_path).read_text(errors="replace"), ""
    return CommandResult(
        proc.returncode,
        seconds,
        sampler.peak_bytes,
        stdout or "",
        stderr or "",
        sampler.samples,
        sampler.epoch0,
        cpu,
    )


# --- full rebuild --------------------------------------------------------------------------------


@contextlib.contextmanager
def _instance(dagster_home: Path):
    """The Dagster instance stored in `dagster_home` (DAGSTER_HOME set only meanwhile)."""
    import dagster as dg

    old = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    try:
        with dg.DagsterInstance.get() as instance:
            yield instance
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = old


def step_windows(dagster_home: Path) -> dict[str, tuple[float, float, float]]:
    """(start, end, seconds) of each successful step of the newest run in `dagster_home`: Unix
    times of its STEP_START and STEP_SUCCESS events, and the duration STEP_SUCCESS reports."""
    import dagster as dg

    with _instance(dagster_home) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return {}
        starts: dict[str, float] = {}
        out: dict[str, tuple[float, float, float]] = {}
        for rec in instance.all_logs(runs[0].run_id):
            ev = rec.dagster_event
            if ev is None or ev.step_key is None:
                continue
            if ev.event_type == dg.DagsterEventType.STEP_START:
                starts[ev.step_key] = rec.timestamp
            elif ev.event_type == dg.DagsterEventType.STEP_SUCCESS:
                end, seconds = rec.timestamp, ev.step_success_data.duration_ms / 1000.0
                out[ev.step_key] = (starts.get(ev.step_key, end - seconds), end, seconds)
        return out


def step_durations(dagster_home: Path) -> dict[str, float]:
    """Seconds per step of the newest run in `dagster_home`, from its STEP_SUCCESS events."""
    return {k: seconds for k, (_, _, seconds) in step_windows(dagster_home).items()}


def step_memory(
    windows: dict[str, tuple[float, float, float]], samples: list, epoch0: float
) -> dict:
    """Per step: the process tree's peak RSS while it ran and its RSS when it started (GiB).

    The rebuild runs its steps one after another in one process (in-process executor), so the
    peak during a step is that step's high-water mark on top of what earlier steps left resident;
    `start_gib` says how much that was. A step shorter than the 0.5 s sampling interval gets the
    nearest sample.
    """
    if not samples:
        return {}
    times = [epoch0 + t for t, _ in samples]
    out = {}
    for step, (start, end, _) in windows.items():
        inside = [rss for t, (_, rss) in zip(times, samples, strict=True) if start <= t <= end]
        before = [rss for t, (_, rss) in zip(times, samples, strict=True) if t <= start]
        nearest = min(range(len(times)), key=lambda i: abs(times[i] - (start + end) / 2))
        peak = max(inside) if inside else samples[nearest][1]
        at_start = before[-1] if before else samples[0][1]
        out[step] = {"peak_gib": peak / 1024**3, "start_gib": at_start / 1024**3}
    return out


def rebuild_env(home: Path, scale: str, extra: dict | None = None) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RECSYS_", "MLFLOW_", "OPENAI_", "DAGSTER_"))
    }
    env.update(
        {
            "RECSYS_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "RECSYS_SAMPLE_SCALE": scale,
            "RECSYS_LABELER": "offline",
            "DAGSTER_DISABLE_TELEMETRY": "1",
        }
    )
    env.update(extra or {})
    return env


def full_rebuild(
    home: Path, scale: str, timeout: float | None = None, extra_env: dict | None = None
) -> dict:
    """`recsys materialize` in a fresh RECSYS_HOME (sample generated inside it), as a subprocess."""
    if home.exists():
        import shutil

        shutil.rmtree(home)
    (home / "dagster").mkdir(parents=True)
    # Telemetry off; otherwise the instance defaults (what a fresh `make demo` home gets).
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    load_start = os.getloadavg()
    res = run_measured(
        [str(VENV_BIN / "recsys"), "materialize"],
        env=rebuild_env(home, scale, extra_env),
        cwd=REPO,
        timeout=timeout,
        log_path=home.parent / f"{home.name}.log",
    )
    windows = step_windows(home / "dagster") if res.returncode == 0 else {}
    return {
        "scale": scale,
        "ok": res.returncode == 0,
        "seconds": res.seconds,
        "peak_rss_gib": res.peak_rss_gib,
        "cpu_seconds": res.cpu_seconds,
        "steps": {k: seconds for k, (_, _, seconds) in windows.items()},
        "evaluate_seconds": (
            materialization_value(home / "dagster", "ranker_model", "evaluate_seconds")
            if res.returncode == 0
            else None
        ),
        "step_memory": step_memory(windows, res.memory_samples, res.epoch0),
        # 1/5/15-min load averages: on a shared machine, read the seconds next to them.
        "load_avg_start": load_start,
        "load_avg_end": os.getloadavg(),
        "log_tail": res.stdout[-3000:] if res.returncode != 0 else "",
    }


def materialization_value(dagster_home: Path, asset: str, key: str) -> float | None:
    """A numeric metadata value of `asset`'s newest materialization (e.g. ranker_model's
    evaluate_seconds: the holdout scoring that runs inside that step)."""
    import dagster as dg

    with _instance(dagster_home) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        mat = event.asset_materialization if event is not None else None
        value = mat.metadata.get(key) if mat is not None else None
        number = value.value if value is not None else None
        return float(number) if isinstance(number, int | float) else None


def write_json(path: str | Path | None, payload: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2, default=str, ensure_ascii=False))


def print_table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in r] for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
