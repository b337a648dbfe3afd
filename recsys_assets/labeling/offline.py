"""Offline industry labeler: a knowledge-based classifier over name, menu and description.

Why it exists: the pipeline must label cold-start restaurants with no network and no model download,
fast enough for 200,000 rows. A hand-written lexicon of dishes (with Korean spelling variants and
common English names), generic business words and chain brands is scanned with one character trie
per field. The lexicon is data: each industry's `lexicon` lines in the taxonomy registry
(recsys_assets/data/taxonomy.yaml) plus recsys_assets/data/lexicon_variants.yaml.

Scoring rules (from the taxonomy RULES):
- the menu outweighs the name: every menu item counts fully, the name counts at ``NAME_WEIGHT``;
- in a compound item the *last* matched dish is its head (Korean is head-final: 돈까스김밥 is a 김밥,
  불고기피자 is a 피자), the other matches only modify it;
- earlier menu items weigh slightly more (signature dishes come first);
- generic items (공기밥, 콜라, 소주 ...) weigh almost nothing;
- no usable evidence -> ``other`` with low confidence.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial
from pathlib import Path

from recsys_assets import taxonomy
from recsys_assets.datafiles import DATA_DIR, DataFileError, LocatedDict, load_yaml
from recsys_assets.taxonomy import OTHER, Taxonomy

__all__ = ["LEXICON_VERSION", "OfflineLabeler", "OfflinePrediction", "split_menu"]

LEXICON_VERSION = "offline-lexicon-v1"

NAME_WEIGHT = 0.6  # a name alone is a weak hint
DESC_WEIGHT = 0.35  # descriptions are free text, often marketing
DESC_CAP = 1.0  # per-industry cap of the description's contribution
MODIFIER_WEIGHT = 0.35  # non-head matches inside one menu item
STRONG_HEAD = 0.6  # a head weaker than this lets its modifiers count fully
POSITION_BONUS = 0.4  # first item weighs 1 + 0.4, decaying geometrically to 1
POSITION_DECAY = 0.75
MIN_EVIDENCE = 0.25  # below this total score the restaurant is "other"
STRENGTH_SCALE = 1.0  # evidence strength = 1 - exp(-total / scale)
MAX_FIELD_CHARS = {"name": 300, "menu": 6000, "description": 3000}
MAX_ITEMS = 120
MAX_EVIDENCE = 24
# the weight of the rank-th non-generic menu item (at most MAX_ITEMS items), computed once
_POSITION_WEIGHTS = tuple(1.0 + POSITION_BONUS * POSITION_DECAY**rank for rank in range(MAX_ITEMS))

# ------------------------------------------------------------------------------------------------
# Lexicon: the `lexicon` lines of every industry in the taxonomy registry (recsys_assets/data/
# taxonomy.yaml, whose header documents the scopes) plus the spelling variants of
# recsys_assets/data/lexicon_variants.yaml.
# ------------------------------------------------------------------------------------------------
VARIANTS_PATH = DATA_DIR / "lexicon_variants.yaml"


def _load_variants(path: Path) -> dict[str, str]:
    """variant -> canonical spelling; a canonical form may not itself be a variant (one pass)."""
    doc = load_yaml(path)
    if not isinstance(doc, LocatedDict) or not doc:
        raise DataFileError(f"{path}:1: expected 'variant: canonical' lines")
    for variant, canonical in doc.items():
        line = doc.line_of(variant)
        if not isinstance(variant, str) or not isinstance(canonical, str) or not canonical.strip():
            raise DataFileError(
                f"{path}:{line}: {variant!r}: {canonical!r} is not 'variant: canonical'"
            )
        if canonical in doc:
            raise DataFileError(
                f"{path}:{line}: canonical form {canonical!r} is itself a variant "
                f"(line {doc.line_of(canonical)}); point {variant!r} at its final form"
            )
    return dict(doc)


# Spelling variants folded to one canonical form, in the lexicon and in the input alike, so every
# variant of a dish scores identically (돈가스 = 돈까스, 자장면 = 짜장면, 주꾸미 = 쭈꾸미 ...).
_VARIANTS = _load_variants(VARIANTS_PATH)
_VARIANT_RE = re.compile("|".join(sorted(map(re.escape, _VARIANTS), key=len, reverse=True)))


def _canon(text: str) -> str:
    return _VARIANT_RE.sub(lambda m: _VARIANTS[m.group()], text)


_ASCII_RE = re.compile(r"[a-z][a-z0-9']*")


@dataclass(frozen=True)
class _Entry:
    weights: tuple[float, ...]
    generic: bool = False

    @cached_property
    def nonzero(self) -> tuple[tuple[int, float], ...]:
        """(industry index, weight) of the non-zero weights: the only ones that move a score that
        starts at +0.0 and grows by max() or addition."""
        return tuple((i, w) for i, w in enumerate(self.weights) if w)


def _parse_lexicon(tax: Taxonomy) -> dict[str, dict[str, dict[str, float]]]:
    """scope -> term -> industry -> weight (the last line wins for a repeated term/industry)."""
    out: dict[str, dict[str, dict[str, float]]] = {s: {} for s in taxonomy.LEXICON_SCOPES}
    for industry in tax.industries:
        for line in industry.lexicon:
            for raw in line.terms:
                term = _canon(_normalize(raw.replace("_", " ")))
                if not term:
                    raise DataFileError(
                        f"{tax.source}:{line.line}: industry {industry.code!r}: "
                        f"lexicon term {raw!r} has no letters or digits"
                    )
                out[line.scope].setdefault(term, {})[industry.code] = line.weight
    return out


def _trie(words: Iterable[str]) -> dict:
    """A character trie of the lexicon words; the key "" marks the end of a word."""
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}
    return trie


def _trie_matches(trie: dict, text: str) -> list[tuple[int, str]]:
    """(start, word) of the longest lexicon word starting at each position of ``text``.

    A dictionary walk from the positions whose character starts a word: cheaper than a lookahead
    regex over the trie, which tries every first character's branch in turn at every position.
    """
    found: list[tuple[int, str]] = []
    n = len(text)
    for i, ch in enumerate(text):
        node = trie.get(ch)
        if node is None:
            continue
        end = i + 1 if "" in node else 0
        j = i + 1
        while j < n:
            node = node.get(text[j])
            if node is None:
                break
            j += 1
            if "" in node:
                end = j
        if end:
            found.append((i, text[i:end]))
    return found


class _Lexicon:
    """The compiled lexicon of one taxonomy: lookup dictionaries plus one trie per scope."""

    def __init__(self, tax: Taxonomy) -> None:
        self.codes = tax.codes
        self.n = len(self.codes)
        self.idx = {code: i for i, code in enumerate(self.codes)}
        self.other = self.idx[OTHER]
        self.pub = self.idx.get("pub")  # the anju-menu rule below needs a pub industry
        self.empty_item = _ItemScore((), (), False, self.other)
        # items, names, descriptions and menu pieces repeat across restaurants (chains, common
        # dishes, templated descriptions): one cache each per compiled lexicon
        self.score_item = lru_cache(maxsize=200_000)(partial(_score_item, self))
        self.score_piece = lru_cache(maxsize=200_000)(partial(_score_piece, self))
        self.name_part = lru_cache(maxsize=200_000)(partial(_name_part, self))
        self.desc_part = lru_cache(maxsize=200_000)(partial(_desc_part, self))
        parsed = _parse_lexicon(tax)
        menu: dict[str, _Entry] = {}
        for term, ws in parsed["dish"].items():
            menu[term] = _Entry(self.vector(ws))
        for term, ws in parsed["generic"].items():
            menu[term] = _Entry(self.vector(ws), generic=True)
        full = dict(menu)
        for scope in ("name", "brand"):
            for term, ws in parsed[scope].items():
                merged = dict(
                    dict(zip(self.codes, full[term].weights, strict=False)) if term in full else {}
                )
                merged = {k: v for k, v in merged.items() if v}
                merged.update(ws)
                full[term] = _Entry(self.vector(merged))
        self.menu = menu
        self.full = full
        self.item_suffix = {t: _Entry(self.vector(ws)) for t, ws in parsed["menu_ending"].items()}
        self.name_suffix = {t: _Entry(self.vector(ws)) for t, ws in parsed["name_ending"].items()}
        self.menu_trie = _trie(t for t in menu if not t.isascii())
        self.full_trie = _trie(t for t in full if not t.isascii())
        self.menu_ascii = {t: e for t, e in menu.items() if t.isascii()}
        self.full_ascii = {t: e for t, e in full.items() if t.isascii()}

    def vector(self, weights: dict[str, float]) -> tuple[float, ...]:
        vec = [0.0] * self.n
        for code, w in weights.items():
            vec[self.idx[code]] = w
        return tuple(vec)

    def scan(self, text: str, full: bool) -> list[tuple[int, int, str, _Entry]]:
        """All maximal lexicon matches in ``text``: (start, end, term, entry), ordered by start."""
        table = self.full if full else self.menu
        ascii_table = self.full_ascii if full else self.menu_ascii
        found: list[tuple[int, int, str, _Entry]] = [
            (start, start + len(term), term, table[term])
            for start, term in _trie_matches(self.full_trie if full else self.menu_trie, text)
        ]
        if ascii_table:
            extra = _ascii_matches(ascii_table, text)
            if extra:  # else the trie's matches are already in order (one per start)
                found += extra
                found.sort(key=lambda x: (x[0], -x[1]))
        # drop matches contained in an earlier, longer one (양념갈비 hides 갈비; 순대국 hides 순대)
        kept: list[tuple[int, int, str, _Entry]] = []
        max_end = -1
        for match in found:
            if match[1] <= max_end:
                continue
            kept.append(match)
            max_end = match[1]
        return kept


def _ascii_matches(ascii_table: dict[str, _Entry], text: str) -> list[tuple[int, int, str, _Entry]]:
    """Whole-word matches of the ASCII lexicon: a two-word term first, else the word (or its
    singular)."""
    found: list[tuple[int, int, str, _Entry]] = []
    tokens = [(m.start(), m.end(), m.group()) for m in _ASCII_RE.finditer(text)]
    for i, (s, e, tok) in enumerate(tokens):
        if i + 1 < len(tokens) and tokens[i + 1][0] == e + 1:
            pair = tok + " " + tokens[i + 1][2]
            entry = ascii_table.get(pair)
            if entry is not None:
                found.append((s, tokens[i + 1][1], pair, entry))
                continue
        entry = ascii_table.get(tok)
        if entry is None and tok.endswith("s"):
            entry = ascii_table.get(tok[:-1])
        if entry is not None:
            found.append((s, e, tok, entry))
    return found


# ------------------------------------------------------------------------------------------------
# Text normalisation
# ------------------------------------------------------------------------------------------------
_PRICE_RE = re.compile(
    r"""
    (?:₩|\\|krw|usd|\$)\s*\d[\d,.]*\s*(?:원|won)?      # ₩8,000  $12.50
    | \d+(?:\.\d+)?\s*(?:만|천)\s*(?:\d+\s*천\s*)?원     # 1.5만원 8천원 1만2천원
    | \d{1,3}(?:[,.]\d{3})+\s*(?:원|won|krw|₩)?        # 4,500  12.000원
    | \d+\s*(?:원|won|krw|₩)                           # 7000원 500원
    | (?<![\d.])\d{4,}(?![\d.])                         # a bare 4+ digit number: 4500
    """,
    re.VERBOSE | re.IGNORECASE,
)
_PRIMARY_SPLIT_RE = re.compile(r"[|\n\r\t;]+")
_SECONDARY_SPLIT_RE = re.compile(r"[,/·•+、，]+")  # noqa: RUF001 - the fullwidth comma is meant
_SPACE_RE = re.compile(r"\s+")


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return False
    try:
        return bool(value != value)  # noqa: PLR0124 - NaN of any numeric type
    except (TypeError, ValueError):  # pandas.NA and friends refuse to be truthy
        return True


def _to_text(value: object, limit: int) -> str:
    if _is_missing(value):
        return ""
    text = value if isinstance(value, str) else str(value)
    return unicodedata.normalize("NFKC", text[: limit * 2])[:limit]


_JUNK_RE = re.compile(r"(?:[^\w']|_)+")  # \w = Unicode letters and digits (plus '_', dropped too)
_LETTER_RE = re.compile(r"[^\W\d_]")


def _clean(text: str) -> str:
    """Keep letters, digits and apostrophes; emoji, brackets and other symbols become spaces."""
    return _JUNK_RE.sub(" ", text).strip()


def _normalize(text: str) -> str:
    return _clean(unicodedata.normalize("NFKC", text).lower())


def split_menu(menu: str | None) -> list[str]:
    """Split a raw menu string into clean item names.

    Items are separated by '|' (also newlines, ';', ',', '/', '·', '+'); prices ("짜장면 7000원",
    "아메리카노 4,500", "₩8,000", "1.5만원"), emoji, brackets and stray whitespace are removed, text is
    NFKC-normalised (case is kept) and empty items are dropped.
    """
    text = _to_text(menu, MAX_FIELD_CHARS["menu"])
    if not text:
        return []
    items: list[str] = []
    for raw_piece in _PRIMARY_SPLIT_RE.split(text):
        items += _piece_items(raw_piece)
        if len(items) >= MAX_ITEMS:
            return items[:MAX_ITEMS]
    return items


@lru_cache(maxsize=200_000)
def _piece_items(raw_piece: str) -> tuple[str, ...]:
    """The clean items of one '|'-separated piece of a menu (pieces repeat across menus)."""
    piece = _PRICE_RE.sub(" ", raw_piece)
    items = (_clean(sub) for sub in _SECONDARY_SPLIT_RE.split(piece))
    return tuple(item for item in items if item and _has_content(item))


def _has_content(item: str) -> bool:
    return _LETTER_RE.search(item) is not None


# ------------------------------------------------------------------------------------------------
# The labeler
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OfflinePrediction:
    industry: str  # one of taxonomy.INDUSTRY_CODES
    confidence: float  # 0..1
    margin: float  # 0..1, normalized score gap to the runner-up, shrunk when evidence is thin
    runner_up: str | None
    evidence: tuple[str, ...]  # matched lexicon terms, "field:term"


@dataclass(frozen=True)
class _ItemScore:
    sparse: tuple[tuple[int, float], ...]  # (industry index, score) for non-zero scores
    terms: tuple[str, ...]
    generic: bool
    top: int  # industry index of the item's best score


@lru_cache(maxsize=4)
def _compiled(tax: Taxonomy) -> _Lexicon:
    return _Lexicon(tax)


def _score_item(lex: _Lexicon, item: str) -> _ItemScore:
    """Score one lower-cased, canonicalised menu item (cached per lexicon as ``lex.score_item``).

    The last non-generic match is the head of the compound; earlier matches count as modifiers.
    """
    matches = lex.scan(item, full=False)
    compact_end = len(item.rstrip())
    last = item[compact_end - 1] if compact_end else ""
    suffix = lex.item_suffix.get(last)
    if suffix is not None and not any(end >= compact_end for _, end, _, _ in matches):
        matches.append((compact_end - 1, compact_end, last, suffix))
    if not matches:
        return lex.empty_item
    terms = tuple(m[2] for m in matches)
    real = [m for m in matches if not m[3].generic]
    if not real:
        vec = [0.0] * lex.n
        for m in matches:
            vec = [max(a, b) for a, b in zip(vec, m[3].weights, strict=False)]
        return _item_score(vec, terms, True)
    head = max(real, key=lambda m: (m[1], m[1] - m[0]))
    vec = list(head[3].weights)
    # A weak head (구이, 정식, 덮밥) names a cooking style or a format, so the modifiers say what it is.
    factor = MODIFIER_WEIGHT if max(vec) >= STRONG_HEAD else 1.0
    seen = {head[2]}
    for m in real:
        if m[2] in seen:
            continue
        seen.add(m[2])
        for i, w in enumerate(m[3].weights):
            if w:
                vec[i] += factor * w
    return _item_score(vec, terms, False)


def _score_piece(lex: _Lexicon, raw_piece: str) -> tuple[tuple[_ItemScore, tuple[str, ...]], ...]:
    """Each item of a menu piece scored, with its evidence (cached as ``lex.score_piece``)."""
    scored = (lex.score_item(_canon(item.lower())) for item in _piece_items(raw_piece))
    return tuple((s, tuple("menu:" + t for t in s.terms)) for s in scored)


def _menu_items(lex: _Lexicon, menu: object) -> list[tuple[_ItemScore, tuple[str, ...]]]:
    """``split_menu(menu)``'s items, scored: the same items, piece by piece from the cache."""
    text = _to_text(menu, MAX_FIELD_CHARS["menu"])
    if not text:
        return []
    out: list[tuple[_ItemScore, tuple[str, ...]]] = []
    for raw_piece in _PRIMARY_SPLIT_RE.split(text):
        out += lex.score_piece(raw_piece)
        if len(out) >= MAX_ITEMS:
            return out[:MAX_ITEMS]
    return out


def _item_score(vec: list[float], terms: tuple[str, ...], generic: bool) -> _ItemScore:
    sparse = _sparse(vec)
    top = max(range(len(vec)), key=lambda i: (vec[i], -i))
    return _ItemScore(sparse, terms, generic, top)


def _strip_branch(name: str) -> str:
    """Drop branch suffixes ("강남역점", "2호점", "본점") that follow the brand after a space."""
    tokens = name.split(" ")
    if len(tokens) > 1:
        tokens = [tokens[0]] + [
            t
            for t in tokens[1:]
            if not (len(t) >= 2 and t.endswith("점") and not t.endswith("반점"))
        ]
    return " ".join(tokens)


def _score_name(lex: _Lexicon, name: str) -> tuple[list[float], list[str]]:
    vec = [0.0] * lex.n
    evidence: list[str] = []
    name = _strip_branch(name)
    for _, _, term, entry in lex.scan(name, full=True):
        for i, w in entry.nonzero:
            vec[i] = max(vec[i], w)
        evidence.append("name:" + term)
    # Chinese-restaurant endings (신흥각, 동해루): only the last syllable of the first word, weak.
    first = name.split(" ")[0] if name else ""
    if len(first) >= 2 and not first[-1].isascii():
        suffix = lex.name_suffix.get(first[-1])
        if suffix is not None and not any(vec):
            vec = [max(a, b) for a, b in zip(vec, suffix.weights, strict=False)]
            evidence.append("name-ending:" + first[-1])
    return [NAME_WEIGHT * v for v in vec], evidence


def _score_description(lex: _Lexicon, desc: str) -> tuple[list[float], list[str]]:
    vec = [0.0] * lex.n
    evidence: list[str] = []
    for _, _, term, entry in lex.scan(desc, full=True):
        if entry.generic:
            continue
        for i, w in entry.nonzero:
            vec[i] += DESC_WEIGHT * w
        evidence.append("desc:" + term)
    return [min(v, DESC_CAP) for v in vec], evidence


# A field's contribution: ((industry index, score) for its non-zero scores, evidence), or None
# when the field has no text. Sparse because predict adds it to every restaurant's scores, and
# adding a zero changes no score (scores start at +0.0 and only grow by addition, never -0.0).
_Part = tuple[tuple[tuple[int, float], ...], tuple[str, ...]] | None


def _sparse(vec: list[float]) -> tuple[tuple[int, float], ...]:
    return tuple((i, w) for i, w in enumerate(vec) if w)


def _name_part(lex: _Lexicon, name: object) -> _Part:
    text = _canon(_normalize(_to_text(name, MAX_FIELD_CHARS["name"])))
    if not text:
        return None
    vec, evidence = _score_name(lex, text)
    return _sparse(vec), tuple(evidence)


def _desc_part(lex: _Lexicon, description: object) -> _Part:
    text = _canon(_normalize(_to_text(description, MAX_FIELD_CHARS["description"])))
    if not text:
        return None
    vec, evidence = _score_description(lex, text)
    return _sparse(vec), tuple(evidence)


class OfflineLabeler:
    """Lexicon classifier: deterministic, stdlib-only, roughly 10,000 restaurants/s on one core."""

    version: str = LEXICON_VERSION

    def __init__(self, registry: Taxonomy | None = None) -> None:
        """``registry``: the taxonomy whose industries and lexicon lines to use (default: packaged)."""
        self._lex = _compiled(registry or taxonomy.DEFAULT)

    def predict(
        self, name: str | None, menu: str | None, description: str | None = None
    ) -> OfflinePrediction:
        """Label one restaurant; any field may be None/NaN/empty."""
        lex = self._lex
        scores = [0.0] * lex.n
        evidence: list[str] = []

        # each field's part is cached by its text (None and NaN are not worth a cache entry)
        part = lex.name_part(name) if isinstance(name, str) else _name_part(lex, name)
        if part is not None:
            for i, w in part[0]:
                scores[i] += w
            evidence += part[1]

        item_tops: set[int] = set()
        rank = 0
        for scored, item_evidence in _menu_items(lex, menu):
            if not scored.terms:
                continue
            if scored.generic:
                weight = 1.0
            else:
                weight = _POSITION_WEIGHTS[rank]
                rank += 1
                item_tops.add(scored.top)
            for i, w in scored.sparse:
                scores[i] += weight * w
            evidence += item_evidence

        if isinstance(description, str):
            part = lex.desc_part(description)
        else:
            part = _desc_part(lex, description)
        if part is not None:
            for i, w in part[0]:
                scores[i] += w
            evidence += part[1]

        # A hodgepodge of dishes from three or more cuisines plus drinking snacks is a pub's anju
        # menu (고등어봉초밥 | 과일화채 | 모둠꼬치 is an izakaya, not a sushi bar).
        if lex.pub is not None and len(item_tops) >= 3 and scores[lex.pub] > 0:
            scores[lex.pub] *= 1.5

        return _decide(lex, scores, _dedupe(evidence))

    def predict_many(
        self, rows: Iterable[tuple[str | None, str | None, str | None]]
    ) -> list[OfflinePrediction]:
        out = []
        for given in rows:
            row: tuple[str | None, ...] = tuple(given)
            name = row[0] if len(row) > 0 else None
            menu = row[1] if len(row) > 1 else None
            desc = row[2] if len(row) > 2 else None
            out.append(self.predict(name, menu, desc))
        return out


def _dedupe(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))[:MAX_EVIDENCE]


def _decide(lex: _Lexicon, scores: list[float], evidence: tuple[str, ...]) -> OfflinePrediction:
    """Turn raw scores into a prediction; ties break by taxonomy order (deterministic)."""
    codes = lex.codes
    total = sum([s for s in scores if s > 0])
    # the best two by score, ties to the lower index (as sorting by (-score, index) would give)
    top = scores.index(max(scores))
    rest = list(scores)
    rest[top] = -math.inf
    second = rest.index(max(rest))
    if total < MIN_EVIDENCE or scores[top] <= 0:
        runner = codes[top] if scores[top] > 0 and top != lex.other else None
        confidence = 0.05 + 0.2 * min(total / MIN_EVIDENCE, 1.0) if total else 0.05
        return OfflinePrediction(OTHER, round(confidence, 4), 0.0, runner, evidence)
    strength = 1.0 - math.exp(-total / STRENGTH_SCALE)
    p1 = scores[top] / total
    p2 = max(scores[second], 0.0) / total
    confidence = min(max(p1 * strength, 0.0), 1.0)
    margin = min(max((p1 - p2) * strength, 0.0), 1.0)
    runner = codes[second] if scores[second] > 0 else None
    return OfflinePrediction(codes[top], round(confidence, 4), round(margin, 4), runner, evidence)
