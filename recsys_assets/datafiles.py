"""Reading the packaged data files under ``recsys_assets/data/`` with errors that point at a line.

Why a module of its own: the taxonomy registry, the offline lexicon's spelling variants and the
sample catalog are data, edited by people who should not have to read Python. A bad entry must
fail at load time with ``<file>:<line>: <what is wrong>`` as the first line of the message.

YAML is read with a ``SafeLoader`` subclass (plain data only, never Python objects, exactly like
``yaml.safe_load``) that additionally refuses duplicate keys (PyYAML keeps the last one silently)
and remembers the line of every mapping key and list item.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

DATA_DIR = Path(__file__).parent / "data"

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DataFileError(ValueError):
    """A data file has a bad entry; the message starts with ``<file>:<line>:``."""


class LocatedDict(dict):
    """A YAML mapping that knows its own line and the line of each key (1-based)."""

    def __init__(self, *args: Any, line: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line = line
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LocatedList(list):
    """A YAML sequence that knows its own line and the line of each item (1-based)."""

    def __init__(self, items: Any = (), line: int = 0, lines: list[int] | None = None) -> None:
        super().__init__(items)
        self.line = line
        self.lines: list[int] = lines if lines is not None else [line] * len(self)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line


class _Loader(_BaseLoader):
    """SafeLoader + line numbers + duplicate-key refusal."""


def _construct_map(loader: Any, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    out = LocatedDict(line=node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in out:
            raise _DuplicateKey(key, line)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _construct_seq(loader: Any, node: yaml.SequenceNode) -> LocatedList:
    return LocatedList(
        [loader.construct_object(child, deep=True) for child in node.value],
        line=node.start_mark.line + 1,
        lines=[child.start_mark.line + 1 for child in node.value],
    )


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load_yaml(path: Path) -> Any:
    """Parse one YAML file into LocatedDict/LocatedList/scalars; DataFileError on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: cannot read: {exc}") from exc
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (_Loader is a SafeLoader)
    except _DuplicateKey as exc:
        raise DataFileError(f"{path}:{exc.line}: duplicate key {exc.key!r}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise DataFileError(f"{path}:{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise DataFileError(f"{path}: not valid YAML: {exc}") from None


def read_csv_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for every data row; the header must be exactly ``columns``."""
    try:
        f = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read: {exc}") from exc
    with f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None or tuple(h.strip() for h in header) != columns:
                raise DataFileError(f"{path}:1: header must be {','.join(columns)}, got {header}")
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(columns):
                    raise DataFileError(
                        f"{path}:{line}: expected {len(columns)} fields "
                        f"({','.join(columns)}), got {len(row)}"
                    )
                yield line, {c: v.strip() for c, v in zip(columns, row, strict=True)}
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataFileError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
