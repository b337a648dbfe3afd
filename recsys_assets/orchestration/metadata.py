"""Helpers that turn warehouse tables into Dagster metadata (row counts, previews, schemas, charts).

The Dagster UI shows a markdown value shorter than `INLINE_MD_CHARS` directly on the asset page and
hides a longer one behind "[Show Markdown]"; previews and charts meant to be seen at a glance are
kept under that size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import dagster as dg
import duckdb
import pandas as pd

from recsys_assets.warehouse.columns import describe

INLINE_MD_CHARS = 1000  # the UI's threshold (ui-core MetadataEntry: mdStr.length < 1000)
SIGNIFICANT_DIGITS = 4


def row_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def markdown_table(df: pd.DataFrame, max_rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.head(max_rows).to_markdown(index=False, floatfmt=".4g"))


def preview(
    con: duckdb.DuckDBPyConnection, table: str, order_by: str, n: int = 10
) -> dg.MetadataValue:
    return markdown_table(
        con.execute(f"SELECT * FROM {table} ORDER BY {order_by} LIMIT {int(n)}").df()
    )


def distribution(counts: dict[str, int]) -> dg.MetadataValue:
    total = sum(counts.values()) or 1
    df = pd.DataFrame(
        [(k, v, f"{v / total:.1%}") for k, v in sorted(counts.items(), key=lambda kv: -kv[1])],
        columns=["value", "rows", "share"],
    )
    return markdown_table(df, max_rows=len(df))


def rounded(value: float) -> float:
    """A float as a person reads it: 4 significant digits (0.5034981822839241 -> 0.5035)."""
    if not math.isfinite(value) or value == 0:
        return value
    digits = max(SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))), 0)
    return round(value, digits)


def tidy(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata as shown: floats rounded, empty (None) values left out rather than shown as null."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        if isinstance(value, float):
            out[key] = rounded(value)
        elif isinstance(value, dg.FloatMetadataValue) and value.value is not None:
            out[key] = dg.MetadataValue.float(rounded(value.value))
        else:
            out[key] = value
    return out


def table_metadata(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, Any]:
    """`dagster/column_schema` from the table's actual DESCRIBE, with the registry's descriptions."""
    columns = [
        dg.TableColumn(c.name, c.type, description=c.description or None)
        for c in describe(con, table)
    ]
    return {
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "dagster/table_name": table,
    }


def table_definition(table: str) -> dict[str, Any]:
    """Definition metadata naming the DuckDB table an asset writes (the schema comes at run time)."""
    return {"dagster/table_name": table}


# -- Small SVG charts that the asset page shows inline (under INLINE_MD_CHARS) --------------------

_URI_SAFE = ":/=,.'-_"
_COLOURS = ("crimson", "royalblue", "darkorange", "seagreen", "purple", "gray")


def _svg_md(alt: str, width: int, height: int, body: str) -> str:
    """An SVG as a markdown image (a data URI: nothing to serve, nothing to fetch)."""
    svg = (
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
        f"width='{width * 2}' font-size='8' fill='none'>{body}</svg>"
    )
    # Only what a markdown destination or a data URI cannot hold is escaped (spaces, <, >, #).
    return f"![{alt}](data:image/svg+xml,{quote(svg, safe=_URI_SAFE)})"


def svg_line_chart(alt: str, x: Sequence[float], series: Mapping[str, Sequence[float]]) -> str:
    """Lines over x (e.g. NDCG@k of the model and each baseline) with a legend; markdown.

    Past the inline size (many series) it falls back to the numbers as a markdown table.
    """
    w, h, left, top, plot_w, plot_h = 240, 100, 20, 4, 130, 84
    values = [v for ys in series.values() for v in ys if v is not None and math.isfinite(v)]
    hi = max(values, default=1.0) or 1.0
    xs = [math.log(float(v)) for v in x]  # k is 1..50: a log axis keeps small k readable
    lo_x, span_x = xs[0], (xs[-1] - xs[0]) or 1.0
    axes = (
        f"<path d='M{left},{top}V{top + plot_h}H{left + plot_w}' stroke='gray'/><g fill='gray'>"
        f"<text y='{top + 6}'>{hi:.2f}</text><text x='{left}' y='{h - 1}'>k={x[0]:g}</text>"
        f"<text x='{left + plot_w - 16}' y='{h - 1}'>{x[-1]:g}</text></g>"
    )
    body = [axes]
    for i, (name, ys) in enumerate(series.items()):
        pts = ",".join(
            f"{left + (xv - lo_x) / span_x * plot_w:.0f},{top + plot_h - (yv or 0) / hi * plot_h:.0f}"
            for xv, yv in zip(xs, ys, strict=True)
        )
        colour = _COLOURS[i % len(_COLOURS)]
        body.append(
            f"<path d='M{pts}' stroke='{colour}'/>"
            f"<text x='{left + plot_w + 4}' y='{top + 8 + 11 * i}' fill='{colour}'>{name}</text>"
        )
    md = _svg_md(alt, w, h, "".join(body))
    if len(md) < INLINE_MD_CHARS:
        return md
    table = pd.DataFrame({"x": list(x), **{k: list(v) for k, v in series.items()}})
    return table.to_markdown(index=False, floatfmt=".3f")


def svg_bar_chart(alt: str, bars: Sequence[tuple[str, float]]) -> str:
    """Horizontal bars, largest first, as many as fit inline (e.g. feature importance); markdown."""
    bars = sorted(bars, key=lambda b: -b[1])
    for n in range(min(len(bars), 12), 0, -1):
        top = bars[:n]
        hi = max(v for _, v in top) or 1.0
        body = "".join(
            f"<path d='M120,{6 + 10 * i}h{max(v / hi * 110, 1):.0f}' stroke='royalblue' "
            f"stroke-width='7'/><text x='116' y='{9 + 10 * i}' text-anchor='end'>{name}</text>"
            for i, (name, v) in enumerate(top)
        )
        md = _svg_md(alt, 240, 3 + 10 * n, f"<g fill='black'>{body}</g>")
        if len(md) < INLINE_MD_CHARS:
            return md
    return f"{alt}: {bars[0][0]}" if bars else alt
