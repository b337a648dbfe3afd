"""CSV that is safe to open in a spreadsheet (CSV / formula injection, OWASP).

Restaurant names and menus come from outside; a cell like ``=cmd|' /C calc'!A0`` or
``@HYPERLINK(...)`` written verbatim into a CSV is executed by Excel or LibreOffice when a colleague
opens the file. Every CSV the project writes for people goes through this module: a text cell that
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading single quote, which
spreadsheets show as text and never evaluate. Column names are treated the same way.

Left alone: numeric columns, and text cells that are plain numbers (``-12.5``, ``+82``): a
spreadsheet reads those as numbers, never as formulas. Parquet output keeps the raw text; use it to
round-trip data (a CSV reader gets the quoted text back, quote included).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralize(value: Any) -> Any:
    """The value as a spreadsheet-inert cell: non-text values and harmless text pass unchanged."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_TRIGGERS)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def neutralize_frame(df):
    """A copy of the DataFrame with every text cell and column name neutralized."""
    from pandas.api import types

    out = df.copy()
    for i in range(out.shape[1]):  # by position: input column names may repeat
        col = out.iloc[:, i]
        if not (types.is_numeric_dtype(col) or types.is_datetime64_any_dtype(col)):
            out.isetitem(i, col.map(neutralize, na_action="ignore"))
    out.columns = [neutralize(c) for c in out.columns]
    return out


def write_csv(df, path: Path | str, **kwargs: Any) -> None:
    """DataFrame.to_csv (UTF-8, no index) of the neutralized frame.

    Lines end in CRLF (RFC 4180): with pandas' default "\n" a bare carriage return inside a cell is
    written unquoted and splits the row for every CSV reader; with CRLF it is quoted.
    """
    kwargs.setdefault("index", False)
    kwargs.setdefault("encoding", "utf-8")
    kwargs.setdefault("lineterminator", "\r\n")
    neutralize_frame(df).to_csv(path, **kwargs)
