"""A LightGBM booster compiled to machine code (lleaves, on LLVM) for scoring a whole base.

LightGBM's own predict walks every tree through its generic C++ API: ~2-7 µs per row here, which
at 200k restaurants x ~110 candidates is more than the `recommendations` step's whole budget.
lleaves compiles the model file into one native function that walks the rows once per cache
block of BLOCK_TREES trees (the trees' code of a block stays in the instruction cache: ~1.55x
less CPU per row than one block of all trees for a 262-tree booster). lleaves itself adds a later
block's sum to the row's partial score, which is not LightGBM's order; `_exact_blocks` has each
block go on from the partial score instead, so every row adds the trees' outputs one by one in
LightGBM's order from 0.0 and the scores are the same floats, not just close ones. Every use
re-checks that on a sample of rows against LightGBM, and a difference, a missing lleaves or a
failed compile falls back to LightGBM. The machine code is cached per model file, block size,
lleaves and llvmlite versions and CPU, so a champion is compiled once.

Never with the trees inlined: inlining makes predict ~1.75x faster again (blocks of 34, 262 trees:
0.57 against 1.0 CPU-s per 600k large-scale rows) but its compile took 12.9 CPU-s against 3.0
(6.96 / 0.73 with blocks of 8; one block of 246 trees: 159 CPU-s), and every rebuild that trains a
new champion pays the compile: at the large scale's ~15M serving rows it saves about what it costs.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHECK_ROWS = 2_000  # rows scored by both, on first use, before the compiled scores are trusted

# Fewer rows to score than this: a booster not compiled yet is not compiled (LightGBM scores).
# Both the compile and the per-row saving grow with the trees (CPU-s, one process, 2 threads):
# the 146-tree medium champion compiles in 2.35 CPU-s and scores 5.14 (LightGBM) against 2.27
# (compiled) µs per row, so it repays itself after 0.82M rows; the 31-tree small one 0.37-0.45
# CPU-s against 0.95 / 0.36 µs per row: 0.7M rows (benchmarks/REPORT.md). Those were one-block
# compiles; in blocks the 262-tree large champion compiles in 3.2 CPU-s and scores 5.8 against
# 1.7 µs per row (1 thread): 0.8M rows, so the threshold stands.
COMPILE_MIN_ROWS = 1_000_000

# Trees per cache block: lleaves' default; 16-64 were within 5 % (262 trees, large rows), 8 and
# 128 10-25 % slower, one block of all 262 trees 55 % slower.
BLOCK_TREES = 34
_COMPILING = threading.Lock()  # `_exact_blocks` swaps a module function of lleaves: one at a time

Predict = Callable[[Any, int], Any]  # (float64 matrix, threads) -> scores


def feature_matrix(batch, names: list[str]):
    """The float64 matrix, a row per candidate (C order), that a `Predict` and LightGBM read from
    the columns `names` of an Arrow batch or table (NULL -> NaN). The columns are copied into the
    rows of the transposed matrix, then transposed once: ~2-3x less CPU than filling strided
    columns."""
    import numpy as np

    columns = np.empty((len(names), batch.num_rows), dtype=np.float64)
    for j, c in enumerate(names):
        columns[j] = batch.column(c).to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(columns.T)


def _variant() -> str:
    """The code layout, in the cache file's name: another block size is another file."""
    return f"blocks{BLOCK_TREES}"


def _model_digest(model_file: Path) -> str:
    return hashlib.sha256(model_file.read_bytes()).hexdigest()[:16]


def _in_cache(model_file: Path, cache_dir: Path) -> bool:
    """Whether some compile of this model file is cached (checked without importing LLVM)."""
    return any(cache_dir.glob(f"{_model_digest(model_file)}-{_variant()}-*.so"))


def _cache_file(model_file: Path, cache_dir: Path) -> Path:
    from importlib.metadata import version

    import llvmlite.binding as llvm  # type: ignore[import-untyped]

    digest = _model_digest(model_file)
    cpu = hashlib.sha256(
        f"{llvm.get_host_cpu_name()} {llvm.get_host_cpu_features().flatten()}".encode()
    ).hexdigest()[:8]
    tag = f"{_variant()}-{version('lleaves')}-{version('llvmlite')}"
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
        with _exact_blocks():
            model.compile(
                cache=str(_cache_file(model_file, cache_dir)),
                fblocksize=BLOCK_TREES,
                finline=False,
            )
    except Exception as exc:  # noqa: BLE001 - any failure: LightGBM scores instead
        log.warning("scoring with LightGBM: compiling the booster failed: %s", exc)
        return None
    return lambda x, threads: model.predict(x, n_jobs=threads)


@contextmanager
def _exact_blocks() -> Iterator[None]:
    """lleaves' code generator with `_instruction_block` for its own, while compiling."""
    from lleaves.compiler.codegen import codegen  # type: ignore[import-untyped]

    with _COMPILING:
        own = codegen._populate_instruction_block
        codegen._populate_instruction_block = _instruction_block
        try:
            yield
        finally:
            codegen._populate_instruction_block = own


def _instruction_block(
    block, forest, root_func, tree_funcs, setup_block, next_block, eval_obj_func, use_fp64
) -> None:
    """lleaves 1.3's loop of one cache block over the rows, except that a later block starts
    each row from its partial score in the output instead of 0.0 (lleaves adds the block's sum to
    it): the trees' outputs are then added one by one in LightGBM's order."""
    from lleaves.compiler.codegen import codegen as cg
    from llvmlite import ir

    _, out_arr, start_index, end_index = root_func.args
    builder = ir.IRBuilder(setup_block)
    loop_iter = builder.alloca(cg.LONG, 1, "loop-idx")
    builder.store(builder.zext(start_index, cg.LONG), loop_iter)
    condition_block = root_func.append_basic_block("loop-condition")
    builder.branch(condition_block)

    builder = ir.IRBuilder(condition_block)
    row = builder.load(loop_iter)
    core_block = root_func.append_basic_block("loop-core")
    in_range = builder.icmp_signed("<", row, builder.zext(end_index, cg.LONG))
    builder.cbranch(in_range, core_block, next_block)

    builder = ir.IRBuilder(core_block)
    row = builder.load(loop_iter)
    first = builder.mul(row, ir.Constant(cg.LONG, forest.n_args))
    args = []
    for i, feature in enumerate(forest.features):
        value = builder.load(builder.gep(root_func.args[0], (builder.add(first, cg.lconst(i)),)))
        if feature.is_categorical:  # NaN goes right: the smallest int; else the value as int
            is_nan = builder.fcmp_ordered("uno", value, cg.get_fdtype_const(0.0, use_fp64))
            value = builder.select(is_nan, cg.iconst(-(2**31)), builder.fptosi(value, cg.INT_CAT))
        args.append(value)
    out_first = builder.mul(cg.lconst(forest.n_classes), row)
    out_ptrs = [
        builder.gep(out_arr, (builder.add(out_first, cg.lconst(c)),))
        for c in range(forest.n_classes)
    ]
    if block == 0:
        results = [cg.get_fdtype_const(0.0, use_fp64) for _ in out_ptrs]
    else:  # the partial scores of the blocks before: the sum goes on in the trees' order
        results = [builder.load(ptr) for ptr in out_ptrs]
    for func in tree_funcs:
        tree_out = builder.call(func.llvm_function, args)
        results[func.class_id] = builder.fadd(tree_out, results[func.class_id])
    if eval_obj_func:
        results = cg._populate_objective_func_block(
            builder,
            results,
            forest.objective_func,
            forest.objective_func_config,
            forest.raw_score,
            forest.average_output,
            len(forest.trees),
            use_fp64,
        )
    for result, ptr in zip(results, out_ptrs, strict=True):
        builder.store(result, ptr)
    builder.store(builder.add(row, cg.lconst(1)), loop_iter)
    builder.branch(condition_block)


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
