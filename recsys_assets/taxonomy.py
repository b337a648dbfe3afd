"""The industry taxonomy, read from the one registry file ``recsys_assets/data/taxonomy.yaml``.

Why a data file: adding an industry must be one entry (names, examples, offline-lexicon lines and
the sample generator's recipe), not edits scattered over several modules. This module reads and
validates the file once; the LLM prompt and answer schema, the offline labeler, the sample
generator, the asset checks, the CLI and the README table all read the result. ``load(path)`` reads
another copy, and those consumers take the resulting ``Taxonomy`` as an optional argument (the
tests add a fake industry to a temporary copy and check that every consumer sees it).

Codes are stable identifiers stored in tables and the ledger; never rename one without a migration.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

from recsys_assets.datafiles import DATA_DIR, DataFileError, LocatedDict, LocatedList, load_yaml

__all__ = [
    "BY_CODE",
    "DEFAULT",
    "DEFAULT_PATH",
    "INDUSTRIES",
    "INDUSTRY_CODES",
    "LEXICON_SCOPES",
    "OTHER",
    "RULES",
    "DataFileError",
    "Industry",
    "LexiconLine",
    "MenuEntry",
    "SampleRecipe",
    "Taxonomy",
    "describe",
    "is_valid",
    "load",
    "markdown_table",
    "parse_refs",
    "readme_with_table",
]

DEFAULT_PATH = DATA_DIR / "taxonomy.yaml"
OTHER = "other"
# dish: name, menu and description; name/brand: name and description only; generic: a side order;
# menu_ending / name_ending: one syllable at the end of a menu item / of the name's first word.
LEXICON_SCOPES = ("dish", "name", "brand", "generic", "menu_ending", "name_ending")

_CODE_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
_INDUSTRY_KEYS = {
    "code": True,
    "name_ko": True,
    "name_en": True,
    "examples": True,
    "lexicon": False,
    "sample": False,
}  # key -> required
_SAMPLE_KEYS = {
    "share": True,
    "menu_price": True,
    "emoji": True,
    "staples": True,
    "names": True,
    "menu": True,
    "basics_factor": False,
    "cross_sell": False,
}
_NAME_KEYS = {"cores": True, "fun": True, "english": True}


@dataclass(frozen=True)
class LexiconLine:
    """``<scope> <weight>: term term ...``: evidence for the offline labeler."""

    scope: str  # one of LEXICON_SCOPES
    weight: float
    terms: tuple[str, ...]
    line: int  # in the registry file, for error messages


@dataclass(frozen=True)
class MenuEntry:
    """One menu item of the sample generator and the products it uses."""

    names: tuple[str, ...]  # canonical first, then alternative names
    english: str | None
    popularity: float
    ingredients: tuple[tuple[str, float], ...]  # (catalog name or unique prefix, weight)
    line: int


@dataclass(frozen=True)
class SampleRecipe:
    """How the sample generator makes restaurants of one industry."""

    share: float
    menu_price: tuple[float, float]
    emoji: str
    staples: tuple[tuple[str, float], ...]
    name_cores: tuple[str, ...]
    name_fun: tuple[str, ...]
    name_english: tuple[str, ...]
    menu: tuple[MenuEntry, ...]
    basics_factor: float = 1.0
    cross_sell: tuple[str, ...] = ()
    staples_line: int = 0  # lines in the registry file, for error messages
    cross_sell_line: int = 0


@dataclass(frozen=True)
class Industry:
    code: str
    name_ko: str
    name_en: str
    examples: tuple[str, ...]
    lexicon: tuple[LexiconLine, ...] = field(default=(), repr=False)
    sample: SampleRecipe | None = field(default=None, repr=False)  # None: never generated


@dataclass(frozen=True)
class Taxonomy:
    industries: tuple[Industry, ...]
    rules: tuple[str, ...]
    source: Path

    @cached_property
    def codes(self) -> tuple[str, ...]:
        return tuple(i.code for i in self.industries)

    @cached_property
    def by_code(self) -> dict[str, Industry]:
        return {i.code: i for i in self.industries}

    def is_valid(self, code: object) -> bool:
        return isinstance(code, str) and code in self.by_code

    def describe(self) -> str:
        """One line per industry, used by the LLM prompt."""
        return "\n".join(
            f"- {i.code}: {i.name_ko} / {i.name_en} ({', '.join(i.examples)})"
            for i in self.industries
        )


# -- loading and validation ------------------------------------------------------------------
def _fail(path: Path, line: int, message: str) -> NoReturn:
    raise DataFileError(f"{path}:{line}: {message}")


def _check_keys(
    path: Path, where: str, value: Any, line: int, spec: dict[str, bool]
) -> LocatedDict:
    if not isinstance(value, LocatedDict):
        _fail(path, line, f"{where} must be a mapping with keys {', '.join(spec)}")
    unknown = [k for k in value if k not in spec]
    if unknown:
        _fail(
            path,
            value.line_of(unknown[0]),
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(spec)})",
        )
    missing = [k for k, required in spec.items() if required and k not in value]
    if missing:
        _fail(path, value.line, f"{where}: missing {', '.join(missing)}")
    return value


def _text(path: Path, where: str, value: Any, line: int) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(path, line, f"{where} must be a non-empty text, got {value!r}")
    return value


def _texts(path: Path, where: str, value: Any, line: int) -> tuple[str, ...]:
    if not isinstance(value, LocatedList) or not value:
        _fail(path, line, f"{where} must be a non-empty list of texts")
    return tuple(_text(path, f"{where}[{i}]", v, value.lines[i]) for i, v in enumerate(value))


def _number(path: Path, where: str, value: Any, line: int, *, positive: bool = True) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        _fail(
            path,
            line,
            f"{where} must be a {'positive' if positive else 'non-negative'} number, got {value!r}",
        )
    return value


def parse_refs(spec: str) -> tuple[tuple[str, float], ...]:
    """``"product*weight, product*weight"`` -> ((product, weight), ...); ValueError if malformed."""
    out = []
    for part in spec.split(","):
        if not part.strip():
            continue
        ref, star, weight = part.rpartition("*")
        try:
            value = float(weight)
        except ValueError:
            value = math.nan
        if not star or not ref.strip() or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{part.strip()!r} is not 'product*positive weight'")
        out.append((ref.strip(), value))
    return tuple(out)


def _lexicon(path: Path, where: str, value: Any, line: int) -> tuple[LexiconLine, ...]:
    if not isinstance(value, LocatedList):
        _fail(path, line, f"{where}: lexicon must be a list of '<scope> <weight>: terms'")
    out = []
    for entry, entry_line in zip(value, value.lines, strict=True):
        if not isinstance(entry, dict) or len(entry) != 1:
            _fail(path, entry_line, f"{where}: a lexicon line is '<scope> <weight>: term term ...'")
        ((head, terms),) = entry.items()
        parts = str(head).split()
        if len(parts) != 2 or parts[0] not in LEXICON_SCOPES:
            _fail(
                path,
                entry_line,
                f"{where}: lexicon line starts with {head!r}; expected "
                f"'<scope> <weight>' with scope one of {', '.join(LEXICON_SCOPES)}",
            )
        try:
            weight = float(parts[1])
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight < 0:
            _fail(path, entry_line, f"{where}: lexicon weight {parts[1]!r} is not a number >= 0")
        if not isinstance(terms, str) or not terms.split():
            _fail(path, entry_line, f"{where}: lexicon line {head!r} has no terms")
        out.append(LexiconLine(parts[0], weight, tuple(terms.split()), entry_line))
    return tuple(out)


def _menu_entry(path: Path, where: str, value: Any, line: int) -> MenuEntry:
    text = _text(path, where, value, line)
    parts = [s.strip() for s in text.split(";")]
    if len(parts) != 3:
        _fail(
            path,
            line,
            f"{where}: {text!r} is not 'names @English ; popularity ; product*weight, ...'",
        )
    names_part, _, english = parts[0].partition("@")
    names = tuple(n.strip() for n in names_part.split("/") if n.strip())
    try:
        popularity = float(parts[1])
        refs = parse_refs(parts[2])
    except ValueError as exc:
        _fail(path, line, f"{where}: {exc} in {text!r}")
    if not names or not refs or not math.isfinite(popularity) or popularity <= 0:
        _fail(path, line, f"{where}: {text!r} needs a name, a popularity > 0 and products")
    return MenuEntry(names, english.strip() or None, popularity, refs, line)


def _sample(path: Path, where: str, value: Any, line: int) -> SampleRecipe:
    d = _check_keys(path, f"{where}: sample", value, line, _SAMPLE_KEYS)
    names = _check_keys(path, f"{where}: sample.names", d["names"], d.line_of("names"), _NAME_KEYS)
    price = d["menu_price"]
    if not isinstance(price, list) or len(price) != 2:
        _fail(path, d.line_of("menu_price"), f"{where}: sample.menu_price must be [low, high]")
    low, high = (
        _number(path, f"{where}: sample.menu_price", p, d.line_of("menu_price")) for p in price
    )
    if low > high:
        _fail(path, d.line_of("menu_price"), f"{where}: sample.menu_price: low {low} > high {high}")
    try:
        staples = parse_refs(
            _text(path, f"{where}: sample.staples", d["staples"], d.line_of("staples"))
        )
    except ValueError as exc:
        _fail(path, d.line_of("staples"), f"{where}: sample.staples: {exc}")
    menu = d["menu"]
    if not isinstance(menu, LocatedList) or not menu:
        _fail(path, d.line_of("menu"), f"{where}: sample.menu must be a non-empty list of items")
    cross = d.get("cross_sell", LocatedList())
    return SampleRecipe(
        share=_number(path, f"{where}: sample.share", d["share"], d.line_of("share")),
        menu_price=(low, high),
        emoji=_text(path, f"{where}: sample.emoji", d["emoji"], d.line_of("emoji")),
        staples=staples,
        name_cores=_texts(
            path, f"{where}: sample.names.cores", names["cores"], names.line_of("cores")
        ),
        name_fun=_texts(path, f"{where}: sample.names.fun", names["fun"], names.line_of("fun")),
        name_english=_texts(
            path, f"{where}: sample.names.english", names["english"], names.line_of("english")
        ),
        menu=tuple(
            _menu_entry(path, f"{where}: sample.menu[{i}]", m, menu.lines[i])
            for i, m in enumerate(menu)
        ),
        basics_factor=_number(
            path,
            f"{where}: sample.basics_factor",
            d.get("basics_factor", 1.0),
            d.line_of("basics_factor"),
            positive=False,
        ),
        cross_sell=_texts(path, f"{where}: sample.cross_sell", cross, d.line_of("cross_sell"))
        if cross
        else (),
        staples_line=d.line_of("staples"),
        cross_sell_line=d.line_of("cross_sell"),
    )


def _industry(path: Path, index: int, value: Any, line: int) -> Industry:
    code = value.get("code") if isinstance(value, dict) else None
    where = f"industry {code!r}" if isinstance(code, str) else f"industries[{index}]"
    d = _check_keys(path, where, value, line, _INDUSTRY_KEYS)
    if not isinstance(code, str) or not _CODE_RE.match(code):
        _fail(path, d.line_of("code"), f"{where}: code must be snake_case (a-z, 0-9, _)")
    return Industry(
        code=code,
        name_ko=_text(path, f"{where}: name_ko", d["name_ko"], d.line_of("name_ko")),
        name_en=_text(path, f"{where}: name_en", d["name_en"], d.line_of("name_en")),
        examples=_texts(path, f"{where}: examples", d["examples"], d.line_of("examples")),
        lexicon=_lexicon(path, where, d.get("lexicon", LocatedList()), d.line_of("lexicon")),
        sample=_sample(path, where, d["sample"], d.line_of("sample")) if "sample" in d else None,
    )


def _check_registry(path: Path, industries: tuple[Industry, ...], entries: LocatedList) -> None:
    seen: dict[str, int] = {}
    for ind, line in zip(industries, entries.lines, strict=True):
        if ind.code in seen:
            _fail(
                path, line, f"duplicate industry code {ind.code!r} (first at line {seen[ind.code]})"
            )
        seen[ind.code] = line
    if OTHER not in seen:
        _fail(
            path,
            entries.line,
            f"industries: the taxonomy needs an industry {OTHER!r} (the answer when nothing fits)",
        )
    with_recipe = {i.code for i in industries if i.sample is not None}
    for ind in industries:
        recipe = ind.sample
        if recipe is None:
            continue
        for side in recipe.cross_sell:
            if side not in with_recipe:
                _fail(
                    path,
                    recipe.cross_sell_line,
                    f"industry {ind.code!r}: cross_sell {side!r} "
                    "is not an industry with a sample recipe",
                )


def load(path: Path | str | None = None) -> Taxonomy:
    """Read and validate a registry file (default: the packaged one); DataFileError names the line."""
    path = Path(path) if path is not None else DEFAULT_PATH
    doc = _check_keys(path, "the registry", load_yaml(path), 1, {"rules": True, "industries": True})
    rules = _texts(path, "rules", doc["rules"], doc.line_of("rules"))
    entries = doc["industries"]
    if not isinstance(entries, LocatedList) or not entries:
        _fail(path, doc.line_of("industries"), "industries must be a non-empty list")
    industries = tuple(_industry(path, i, e, entries.lines[i]) for i, e in enumerate(entries))
    _check_registry(path, industries, entries)
    return Taxonomy(industries, rules, path)


# -- the packaged taxonomy, as module constants ------------------------------------------------
DEFAULT: Taxonomy = load()
INDUSTRIES: tuple[Industry, ...] = DEFAULT.industries
INDUSTRY_CODES: tuple[str, ...] = DEFAULT.codes
BY_CODE: dict[str, Industry] = DEFAULT.by_code
RULES: tuple[str, ...] = DEFAULT.rules


def is_valid(code: object) -> bool:
    return DEFAULT.is_valid(code)


def describe() -> str:
    """One line per industry, used by the LLM prompt and the docs."""
    return DEFAULT.describe()


# -- the README table --------------------------------------------------------------------------
TABLE_BEGIN = (
    "<!-- BEGIN taxonomy table: generated from recsys_assets/data/taxonomy.yaml by "
    "`python -m recsys_assets.taxonomy --write README.md` -->"
)
TABLE_END = "<!-- END taxonomy table -->"


def markdown_table(tax: Taxonomy | None = None) -> str:
    tax = tax or DEFAULT

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| code | 업종 | English | examples |", "| --- | --- | --- | --- |"]
    rows += [
        f"| `{i.code}` | {cell(i.name_ko)} | {cell(i.name_en)} | {cell('·'.join(i.examples))} |"
        for i in tax.industries
    ]
    return "\n".join(rows)


def readme_with_table(readme: str, tax: Taxonomy | None = None) -> str:
    """The README text with the generated table between its markers (ValueError without them)."""
    begin, end = readme.find(TABLE_BEGIN), readme.find(TABLE_END)
    if begin < 0 or end < begin:
        raise ValueError(f"the README has no {TABLE_BEGIN!r} ... {TABLE_END!r} block")
    head = readme[: begin + len(TABLE_BEGIN)]
    return f"{head}\n{markdown_table(tax)}\n{readme[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recsys_assets.taxonomy",
        description="Print or update the README's taxonomy table.",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="README", help="rewrite the table in this file")
    group.add_argument(
        "--check", metavar="README", help="exit 1 if the table in this file is stale"
    )
    args = parser.parse_args(argv)
    target = args.write or args.check
    if target is None:
        print(markdown_table())
        return 0
    path = Path(target)
    text = path.read_text(encoding="utf-8")
    fresh = readme_with_table(text)
    if args.write:
        path.write_text(fresh, encoding="utf-8")
        return 0
    if fresh != text:
        print(
            f"{path}: the taxonomy table differs from {DEFAULT_PATH}; "
            f"run: python -m recsys_assets.taxonomy --write {path}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
