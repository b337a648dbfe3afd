"""A LightGBM booster compiled to machine code (lleaves, on LLVM) for scoring a whole base.

LightGBM's own predict walks every tree through its generic C++ API: ~2-7 µs per row here, which
at 200k restaurants x ~110 candidates is more than the `recommendations` step's whole budget.
lleaves compiles the model file into one native function. Compiled as ONE cache block
(fblocksize = number of trees) it adds the trees' outputs in LightGBM's order, starting from 0.0,
so its scores are the same floats, not just close ones; every use re-checks that on a sample of
rows against LightGBM, and a difference, a missing lleaves or a failed compile falls back to
LightGBM. The machine code is cached per model file, lleaves and llvmlite versions and CPU, so
a champion is compiled once.

Never with the trees inlined: inlining makes predict ~1.6x faster (1M large-scale rows: 3.9 against
6.4 CPU-s) but the compile of a 246-tree booster took 159 CPU-s against 5 (benchmarks/REPORT.md),
and every rebuild that trains a new champion pays the compile: it never repays itself there.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHECK_ROWS = 2_000  # rows scored by both, on first use, before the compiled scores are trusted

# Fewer rows to score than this: a booster not compiled yet is not compiled (LightGBM scores).
# Both the compile and the per-row saving grow with the trees (CPU-s, one process, 2 threads):
# the 146-tree medium champion compiles in 2.35 CPU-s and scores 5.14 (LightGBM) against 2.27
# (compiled) µs per row, so it repays itself after 0.82M rows; the 31-tree small one 0.37-0.45
# CPU-s against 0.95 / 0.36 µs per row: 0.7M rows (benchmarks/REPORT.md).
COMPILE_MIN_ROWS = 1_000_000

Predict = Callable[[Any, int], Any]  # (float64 matrix, threads) -> scores


def _model_digest(model_file: Path) -> str:
    return hashlib.sha256(model_file.read_bytes()).hexdigest()[:16]


def _in_cache(model_file: Path, cache_dir: Path) -> bool:
    """Whether some compile of this model file is cached (checked without importing LLVM)."""
    return any(cache_dir.glob(f"{_model_digest(model_file)}-*.so"))


def _cache_file(model_file: Path, cache_dir: Path) -> Path:
    from importlib.metadata import version

    import llvmlite.binding as llvm  # type: ignore[import-untyped]

    digest = _model_digest(model_file)
    cpu = hashlib.sha256(
        f"{llvm.get_host_cpu_name()} {llvm.get_host_cpu_features().flatten()}".encode()
    ).hexdigest()[:8]
    tag = f"plain-{version('lleaves')}-{version('llvmlite')}"
    return cache_dir / f"{digest}-{tag}-{cpu}.so"


def compile_booster(
    model_file: str | Path, cache_dir: Path, rows: int | None = None
) -> Predict | None:
    """The compiled booster's predict, or None (no lleaves, or the compile failed: use
    LightGBM). `rows`: how many rows it is to score; below `COMPILE_MIN_ROWS` only a booster
    already in the cache is used (None when it is not)."""
    model_file = Path(model_file)
    if rows is not None and rows < COMPILE_MIN_ROWS and not _in_cache(model_file, cache_dir):
        return None
    try:
        import lleaves  # type: ignore[import-untyped]

        cache_dir.mkdir(parents=True, exist_ok=True)
        model = lleaves.Model(model_file=str(model_file))
        model.compile(
            cache=str(_cache_file(model_file, cache_dir)),
            fblocksize=model.num_trees(),  # one block: LightGBM's summation order
            finline=False,
        )
    except Exception as exc:  # noqa: BLE001 - any failure: LightGBM scores instead
        log.warning("scoring with LightGBM: compiling the booster failed: %s", exc)
        return None
    return lambda x, threads: model.predict(x, n_jobs=threads)


def checked(compiled: Predict | None, booster, x) -> bool:
    """Whether `compiled` scores the first rows of `x` exactly as LightGBM does."""
    import numpy as np

    if compiled is None:
        return False
    head = np.ascontiguousarray(x[:CHECK_ROWS])
    same = bool(np.array_equal(compiled(head, 1), booster.predict(head, num_threads=1)))
    if not same:
        log.warning("scoring with LightGBM: the compiled booster's scores differ from LightGBM's")
    return same
