"""The project's Dagster instance settings, shared by every entry point.

`recsys materialize`/`demo`, `make ui` and the end-to-end tests all run on
$DAGSTER_HOME/dagster.yaml. This module puts the packaged file there when none exists and names
the project settings that differ when another one is already there: an operator's file (e.g.
with PostgreSQL storage) is never overwritten.

Plain Python (no Dagster import): the CLI checks this before paying for importing Dagster.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

PACKAGED_DAGSTER_YAML = Path(__file__).with_name("dagster.yaml")


def project_settings() -> dict:
    return yaml.safe_load(PACKAGED_DAGSTER_YAML.read_text())


def ensure_dagster_yaml(dagster_home: Path) -> list[str]:
    """Write the project's dagster.yaml into `dagster_home` if it has none.

    Returns the top-level sections (e.g. `concurrency`) in which an existing file differs from
    the project's settings; empty when it matches or was just written.
    """
    dagster_home = Path(dagster_home)
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    if not target.exists():
        # Write-then-rename: a concurrent start never reads a half-written file.
        tmp = target.with_name(f".dagster.yaml.{os.getpid()}.tmp")
        tmp.write_text(PACKAGED_DAGSTER_YAML.read_text())
        os.replace(tmp, target)
        return []
    current = yaml.safe_load(target.read_text()) or {}
    return [key for key, value in project_settings().items() if current.get(key) != value]


def differs_warning(dagster_home: Path, sections: list[str]) -> str:
    return (
        f"warning: {Path(dagster_home) / 'dagster.yaml'} differs from the project's instance "
        f"settings in: {', '.join(sections)} (see {PACKAGED_DAGSTER_YAML}); runs use yours"
    )


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (blocking); the kernel drops it if the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_storage(dagster_home: Path) -> None:
    """Create the instance's SQLite storage once, under $DAGSTER_HOME/.init.lock. Two processes
    creating it at once collide on its schema tables (`table alembic_version already exists`):
    `dagster dev` and a test stack start the webserver and the daemon together on a fresh home."""
    import dagster as dg

    with file_lock(dagster_home / ".init.lock"), dg.DagsterInstance.from_config(str(dagster_home)):
        pass


def main() -> int:
    """`python -m recsys_assets.instance`: prepare $DAGSTER_HOME (used by `make ui`)."""
    from recsys_assets.config import env_str

    home = env_str("DAGSTER_HOME")
    if not home:
        print("error: DAGSTER_HOME is not set", file=sys.stderr)
        return 2
    differs = ensure_dagster_yaml(Path(home))
    if differs:
        print(differs_warning(Path(home), differs), file=sys.stderr)
    ensure_storage(Path(home))
    print(Path(home) / "dagster.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
