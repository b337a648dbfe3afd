"""The ranking SQL, one file per table it builds (plus the shared candidate-feature query).

Files are package data, read with importlib.resources. Values travel as DuckDB named parameters
(`$name`); table and column names are fixed in the files. `run` passes each statement exactly the
parameters its text uses, so one dict of knobs can serve every file. A `{{fragment}}` marker is
replaced by SQL generated in code (never data): the warehouse's statistics SELECT, the feature
registry's column list.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

import duckdb

_PARAM = re.compile(r"\$([A-Za-z_]\w*)")
_FRAGMENT = re.compile(r"\{\{(\w+)\}\}")


@cache
def _read(name: str) -> str:
    return files(__package__).joinpath(f"{name}.sql").read_text(encoding="utf-8")


def load(name: str, fragments: dict[str, str] | None = None) -> str:
    """The text of `<name>.sql`, its `{{fragment}}` markers filled from `fragments`."""
    fragments = fragments or {}

    def fill(m: re.Match) -> str:
        if m.group(1) not in fragments:
            raise KeyError(f"{name}.sql needs the SQL fragment {m.group(1)!r}")
        return fragments[m.group(1)]

    return _FRAGMENT.sub(fill, _read(name))


def params_for(text: str, params: dict) -> dict:
    """The subset of `params` that `text` references (DuckDB rejects unused named parameters)."""
    names = set(_PARAM.findall(text))
    missing = names - params.keys()
    if missing:
        raise KeyError(f"SQL needs parameters {sorted(missing)} that were not given")
    return {k: params[k] for k in names}


def run(
    con: duckdb.DuckDBPyConnection,
    name: str,
    params: dict | None = None,
    fragments: dict[str, str] | None = None,
    prefix: str = "",
) -> duckdb.DuckDBPyConnection:
    """Execute `<prefix>` + `<name>.sql` with the parameters it uses."""
    text = load(name, fragments)
    text = f"{prefix}\n{text}" if prefix else text
    return con.execute(text, params_for(text, params or {}))
