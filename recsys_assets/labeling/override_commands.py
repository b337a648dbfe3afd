"""`recsys label override` and `recsys label review`: human corrections and what to check next.

Mounted under `recsys label` by commands.register(). Exit codes: 0 done; 2 bad usage or input
(unknown industry or restaurant, no --note, a bad overrides file): nothing written; 75 the
warehouse is being written by a run (review, --export-gold, the restaurant check): try later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

BUSY_EXIT = 75  # EX_TEMPFAIL, as `recsys materialize` when another rebuild holds the home


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


def _fail(exc: Exception) -> typer.Exit:
    from recsys_assets.labeling.overrides import WarehouseBusy

    _err(f"error: {exc}")
    return typer.Exit(BUSY_EXIT if isinstance(exc, WarehouseBusy) else 2)


def _settings():
    from recsys_assets.labeling.commands import _settings as settings

    return settings()


def override_cmd(
    restaurant_id: Annotated[
        str | None,
        typer.Argument(
            metavar="RESTAURANT_ID", help="The restaurant to correct.", show_default=False
        ),
    ] = None,
    industry: Annotated[
        str | None,
        typer.Argument(
            metavar="INDUSTRY",
            help="Its taxonomy code (see the README's taxonomy table).",
            show_default=False,
        ),
    ] = None,
    note: Annotated[
        str | None,
        typer.Option("--note", help="Why (required when setting; kept with the override)."),
    ] = None,
    author: Annotated[
        str | None, typer.Option("--author", help="Who (default: RECSYS_USER or the login name).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Record it even if the restaurant is not in the warehouse yet."
        ),
    ] = False,
    list_: Annotated[
        bool,
        typer.Option(
            "--list",
            help="List the overrides in effect (command and file) and the quarantined rows.",
        ),
    ] = False,
    remove: Annotated[
        str | None,
        typer.Option(
            "--remove",
            metavar="RESTAURANT_ID",
            help="Delete the command's override of this restaurant.",
        ),
    ] = None,
    export_gold: Annotated[
        Path | None,
        typer.Option(
            "--export-gold",
            metavar="GOLD.csv",
            help="Write the overrides as a gold file for `recsys label eval` (split = override).",
        ),
    ] = None,
) -> None:
    """Correct a restaurant's industry: the override wins over every labeler, survives every
    rebuild and shows as source = override (confidence 1.0). Recorded in
    RECSYS_HOME/label_overrides.sqlite; the label_overrides file in RECSYS_DATA_DIR is read too.

    Exit codes: 0 done; 2 bad usage or input, nothing written; 75 the warehouse is being written
    by a run (try again when it is done).
    """
    modes = [restaurant_id is not None, list_, remove is not None, export_gold is not None]
    if sum(modes) != 1:
        _err(
            "error: give RESTAURANT_ID INDUSTRY --note TEXT, or one of --list, --remove ID, "
            "--export-gold FILE"
        )
        raise typer.Exit(2)
    settings = _settings()
    if list_:
        _list(settings)
    elif remove is not None:
        _remove(settings, remove, author)
    elif export_gold is not None:
        _export_gold(settings, export_gold)
    else:
        _set(settings, restaurant_id or "", industry, note, author, force)


def _set(
    settings,
    restaurant_id: str,
    industry: str | None,
    note: str | None,
    author: str | None,
    force: bool,
) -> None:
    from recsys_assets.labeling import overrides as ov

    if industry is None:
        _err(
            "error: give the INDUSTRY after the restaurant id, e.g. "
            '`recsys label override R123 chicken --note "fried chicken shop"`'
        )
        raise typer.Exit(2)
    try:
        rid, code = ov.restaurant_key(restaurant_id), ov.industry_code(industry)
    except ov.OverrideError as exc:
        raise _fail(exc) from None
    if not (note or "").strip():
        _err("error: --note is required: say why the label is wrong (it is kept with the override)")
        raise typer.Exit(2)
    current = None
    try:
        with ov.reading(settings) as (con, attached):
            known = attached and ov.has_table(con, "wh", "restaurants")
            if not known and not force:
                _err(
                    f"note: no restaurants in {settings.warehouse_path} yet: {rid!r} is not checked "
                    "(an unknown one is quarantined at the next rebuild)"
                )
            if (
                known
                and not con.execute(
                    "SELECT count(*) FROM wh.restaurants WHERE restaurant_id = ?", [rid]
                ).fetchall()[0][0]
                and not force
            ):
                raise ov.OverrideError(
                    f"unknown restaurant {rid!r}: not in the warehouse's "
                    "restaurants (add --force to record it anyway)"
                )
            if known and ov.has_table(con, "wh", "restaurant_industry"):
                current = con.execute(
                    "SELECT industry, source, confidence FROM "
                    "wh.restaurant_industry WHERE restaurant_id = ?",
                    [rid],
                ).fetchone()
    except ov.WarehouseBusy:
        if not force:
            _err(
                f"note: the warehouse is being written by a run: {rid!r} is not checked against "
                "the restaurants (an unknown one is quarantined at the next rebuild)"
            )
    except ov.OverrideError as exc:
        raise _fail(exc) from None
    store = ov.OverrideStore(settings.home)
    previous = store.get(rid)
    at = store.set(rid, code, (note or "").strip(), author or ov.default_author())
    was = f"was {current[0]} ({current[1]}, {current[2]:.2f})" if current else "not labeled yet"
    replaced = f"; replaces the override to {previous['industry']}" if previous else ""
    typer.echo(
        f"override {rid} -> {code} recorded at {at} ({was}{replaced}) in {store.path}; "
        "it applies at the next rebuild (recsys materialize) and to recsys label from now on"
    )


def _remove(settings, restaurant_id: str, author: str | None) -> None:
    from recsys_assets.labeling import overrides as ov

    store = ov.OverrideStore(settings.home)
    previous = store.remove(restaurant_id.strip(), author or ov.default_author())
    if previous is None:
        _err(
            f"error: no override of {restaurant_id.strip()!r} was recorded with `recsys label "
            f"override` (see --list; the overrides file is edited by hand)"
        )
        raise typer.Exit(2)
    typer.echo(
        f"removed the override {previous['restaurant_id']} -> {previous['industry']} "
        f"(kept in the override_log of {store.path}); the labelers decide again at the "
        "next rebuild, unless the overrides file has this restaurant"
    )


def _list(settings) -> None:
    from recsys_assets.labeling import overrides as ov
    from recsys_assets.warehouse.reader import IngestError

    try:
        with ov.reading(settings) as (con, attached):
            restaurants = (
                "wh.restaurants" if attached and ov.has_table(con, "wh", "restaurants") else None
            )
            checked = ov.check(con, settings, restaurants)
    except (ov.OverrideError, IngestError) as exc:
        raise _fail(exc) from None
    valid = checked.valid
    typer.echo(
        f"{'restaurant_id':<20}{'industry':<16}{'origin':<9}{'corrected_at':<21}{'author':<12}note"
    )
    for r in valid.itertuples(index=False):
        typer.echo(
            f"{_s(r.restaurant_id):<20}{_s(r.industry):<16}{_s(r.origin):<9}"
            f"{_s(r.corrected_at)[:19]:<21}{_s(r.author):<12}{_s(r.note)}"
        )
    for r in checked.rejects.itertuples(index=False):
        number = _s(r.row_number)
        where = f"line {int(float(number)) + 1}" if number else "(recsys label override)"
        typer.echo(f"quarantined ({r.reason}): {r.source_file} {where}: {r.raw_row}")
    checked_note = "" if restaurants else " (restaurants not checked: no warehouse yet)"
    typer.echo(
        f"{len(valid)} override(s) in effect, {len(checked.rejects)} row(s) "
        f"quarantined{checked_note}"
    )


def _s(value: object) -> str:
    """A cell as text; missing values (None, NaN, NaT) as ''."""
    import pandas as pd

    return "" if value is None or bool(pd.isna(value)) else str(value)  # type: ignore[call-overload]


def _export_gold(settings, path: Path) -> None:
    from recsys_assets.labeling import overrides as ov
    from recsys_assets.labeling.commands import _check_output, _write_atomic
    from recsys_assets.warehouse import overrides as sql
    from recsys_assets.warehouse.reader import IngestError

    if path.suffix.lower() != ".csv":
        _err(f"error: {path}: the gold file is a .csv (the format of `recsys label eval`)")
        raise typer.Exit(2)
    _check_output(path)
    try:
        with ov.reading(settings) as (con, attached):
            if not (attached and ov.has_table(con, "wh", "restaurants")):
                raise ov.OverrideError(
                    f"no restaurants in {settings.warehouse_path}: the gold file "
                    "needs their name and menu (run recsys materialize first)"
                )
            con.execute("USE wh")
            checked = ov.check(con, settings, "restaurants")
            texts = sql.texts(con, list(checked.valid["restaurant_id"]))
    except (ov.OverrideError, IngestError) as exc:
        raise _fail(exc) from None
    gold = ov.gold_frame(checked.valid, texts)
    _write_atomic(gold, path)
    typer.echo(
        f"wrote {path}: {len(gold)} correction(s) as gold rows (split = {ov.GOLD_SPLIT}); "
        f"score a labeler on them with: recsys label eval {path}"
    )


def review_cmd(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="CSV (spreadsheet-safe) or Parquet, by suffix.")
    ],
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many rows (the most urgent).")
    ] = None,
    below: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Low confidence means below this (default 0.5)."),
    ] = None,
) -> None:
    """Write the labels most worth a human look, most urgent first: flagged answers, then LLM
    labels the offline lexicon contradicts, then low confidence; overridden restaurants are left
    out. Correct one with `recsys label override ID INDUSTRY --note ...`.

    Exit codes: 0 written; 2 no labels yet or a bad output path; 75 the warehouse is being
    written by a run (try again when it is done).
    """
    from recsys_assets.labeling import overrides as ov
    from recsys_assets.labeling.commands import _check_output, _write_atomic
    from recsys_assets.warehouse import overrides as sql
    from recsys_assets.warehouse.reader import IngestError

    _check_output(output)
    settings = _settings()
    try:
        with ov.reading(settings) as (con, attached):
            if not (attached and ov.has_table(con, "wh", "restaurant_industry")):
                raise ov.OverrideError(
                    f"no labels in {settings.warehouse_path}: materialize "
                    "restaurant_industry first (recsys materialize)"
                )
            con.execute("USE wh")
            checked = ov.check(con, settings, "restaurants")
            candidates = sql.review_candidates(con, list(checked.valid["restaurant_id"]))
    except (ov.OverrideError, IngestError) as exc:
        raise _fail(exc) from None
    queue = ov.review_queue(
        candidates, low_confidence=ov.LOW_CONFIDENCE if below is None else below, limit=limit
    )
    _write_atomic(queue, output)
    typer.echo(
        f"wrote {output}: {len(queue)} of {len(candidates)} labels to review "
        f"({len(checked.valid)} overridden restaurant(s) left out)"
    )
