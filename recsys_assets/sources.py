"""Where the input files come from: the user's RECSYS_DATA_DIR, or generated sample data.

Generation happens once per (scale, seed) into a temporary folder that is renamed into place, so
parallel ingest steps (separate processes) never see a half-written sample.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from recsys_assets.config import Settings

READY_MARKER = ".complete"


def ensure_source_dir(settings: Settings) -> Path:
    """Return the folder holding restaurants/products/orders, generating the sample if needed."""
    if settings.data_dir is not None:
        if not settings.data_dir.is_dir():
            raise FileNotFoundError(f"RECSYS_DATA_DIR={settings.data_dir} is not a folder")
        return settings.data_dir
    target = settings.sample_dir
    if (target / READY_MARKER).exists():
        return target
    from recsys_assets.sample_data import generate_sample

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        generate_sample(
            staging,
            scale=settings.sample_scale,
            seed=settings.seed,
            fmt="parquet",
            world=settings.sample_world,
        )
        (staging / READY_MARKER).write_text("ok\n")
        # OSError: another process renamed its (complete) sample into place first; keep theirs.
        with contextlib.suppress(OSError):
            os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def ground_truth_dir(settings: Settings) -> Path | None:
    """The generator's ground truth (evaluation only); None when the data has none."""
    candidate = (settings.data_dir or settings.sample_dir) / "ground_truth"
    return candidate if candidate.is_dir() else None
