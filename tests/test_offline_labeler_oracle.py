"""The offline labeler against its previous implementation (kept here as the oracle): the trie
walk, the sparse score updates and the cached parts must give every restaurant the same
prediction (industry, confidence, margin, runner-up, evidence) as the lookahead-regex scan and the
dense per-industry loops they replaced."""

from __future__ import annotations

import csv
import math
import random
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pytest

from recsys_assets import sample_data as sd
from recsys_assets import sample_worlds as sw
from recsys_assets.datafiles import DATA_DIR
from recsys_assets.labeling import offline as off
from recsys_assets.labeling.service import _stamps
from recsys_assets.taxonomy import OTHER

DATA = DATA_DIR / "real_world_restaurants.csv"  # the packaged gold file


# --- the oracle: the implementation before the trie walk (uncached) ---------------------------
def _old_trie_pattern(words: Iterable[str]) -> re.Pattern[str]:
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        end = "" in node
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch != ""]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 and not end else "(?:" + "|".join(alts) + ")"
        return body + "?" if end else body

    return re.compile("(?=(" + build(trie) + "))")


class _Oracle:
    def __init__(self, lex: off._Lexicon) -> None:
        self.lex = lex
        self.menu_re = _old_trie_pattern(t for t in lex.menu if not t.isascii())
        self.full_re = _old_trie_pattern(t for t in lex.full if not t.isascii())

    def scan(self, text: str, full: bool) -> list:
        lex = self.lex
        table = lex.full if full else lex.menu
        ascii_table = lex.full_ascii if full else lex.menu_ascii
        found: list = []
        for m in (self.full_re if full else self.menu_re).finditer(text):
            term = m.group(1)
            found.append((m.start(), m.start() + len(term), term, table[term]))
        if ascii_table:
            tokens = [(m.start(), m.end(), m.group()) for m in off._ASCII_RE.finditer(text)]
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
            found.sort(key=lambda x: (x[0], -x[1]))
        kept: list = []
        max_end = -1
        for match in found:
            if match[1] <= max_end:
                continue
            kept.append(match)
            max_end = match[1]
        return kept

    def score_item(self, item: str) -> tuple[list[float], tuple[str, ...], bool, int] | None:
        lex = self.lex
        matches = self.scan(item, full=False)
        compact_end = len(item.rstrip())
        last = item[compact_end - 1] if compact_end else ""
        suffix = lex.item_suffix.get(last)
        if suffix is not None and not any(end >= compact_end for _, end, _, _ in matches):
            matches.append((compact_end - 1, compact_end, last, suffix))
        if not matches:
            return None
        terms = tuple(m[2] for m in matches)
        real = [m for m in matches if not m[3].generic]
        if not real:
            vec = [0.0] * lex.n
            for m in matches:
                vec = [max(a, b) for a, b in zip(vec, m[3].weights, strict=False)]
            return vec, terms, True, max(range(len(vec)), key=lambda i: (vec[i], -i))
        head = max(real, key=lambda m: (m[1], m[1] - m[0]))
        vec = list(head[3].weights)
        factor = off.MODIFIER_WEIGHT if max(vec) >= off.STRONG_HEAD else 1.0
        seen = {head[2]}
        for m in real:
            if m[2] in seen:
                continue
            seen.add(m[2])
            for i, w in enumerate(m[3].weights):
                if w:
                    vec[i] += factor * w
        return vec, terms, False, max(range(len(vec)), key=lambda i: (vec[i], -i))

    def name_vec(self, name: object) -> tuple[list[float], list[str]] | None:
        text = off._canon(off._normalize(off._to_text(name, off.MAX_FIELD_CHARS["name"])))
        if not text:
            return None
        lex = self.lex
        vec = [0.0] * lex.n
        evidence: list[str] = []
        text = off._strip_branch(text)
        for _, _, term, entry in self.scan(text, full=True):
            vec = [max(a, b) for a, b in zip(vec, entry.weights, strict=False)]
            evidence.append("name:" + term)
        first = text.split(" ")[0] if text else ""
        if len(first) >= 2 and not first[-1].isascii():
            suffix = lex.name_suffix.get(first[-1])
            if suffix is not None and not any(vec):
                vec = [max(a, b) for a, b in zip(vec, suffix.weights, strict=False)]
                evidence.append("name-ending:" + first[-1])
        return [off.NAME_WEIGHT * v for v in vec], evidence

    def desc_vec(self, desc: object) -> tuple[list[float], list[str]] | None:
        text = off._canon(off._normalize(off._to_text(desc, off.MAX_FIELD_CHARS["description"])))
        if not text:
            return None
        vec = [0.0] * self.lex.n
        evidence: list[str] = []
        for _, _, term, entry in self.scan(text, full=True):
            if entry.generic:
                continue
            vec = [a + off.DESC_WEIGHT * b for a, b in zip(vec, entry.weights, strict=False)]
            evidence.append("desc:" + term)
        return [min(v, off.DESC_CAP) for v in vec], evidence

    def predict(self, name: object, menu: object, description: object) -> off.OfflinePrediction:
        lex = self.lex
        scores = [0.0] * lex.n
        evidence: list[str] = []
        part = self.name_vec(name)
        if part is not None:
            scores = [a + b for a, b in zip(scores, part[0], strict=False)]
            evidence += part[1]
        item_tops: set[int] = set()
        rank = 0
        for item in off.split_menu(menu):  # type: ignore[arg-type]
            scored = self.score_item(off._canon(item.lower()))
            if scored is None:
                continue
            vec, terms, generic, top = scored
            if generic:
                weight = 1.0
            else:
                weight = 1.0 + off.POSITION_BONUS * off.POSITION_DECAY**rank
                rank += 1
                item_tops.add(top)
            for i, w in enumerate(vec):
                if w:
                    scores[i] += weight * w
            evidence += ["menu:" + t for t in terms]
        part = self.desc_vec(description)
        if part is not None:
            scores = [a + b for a, b in zip(scores, part[0], strict=False)]
            evidence += part[1]
        if lex.pub is not None and len(item_tops) >= 3 and scores[lex.pub] > 0:
            scores[lex.pub] *= 1.5
        return self.decide(scores, tuple(dict.fromkeys(evidence))[: off.MAX_EVIDENCE])

    def decide(self, scores: list[float], evidence: tuple[str, ...]) -> off.OfflinePrediction:
        lex = self.lex
        codes = lex.codes
        total = sum(s for s in scores if s > 0)
        top = scores.index(max(scores))
        rest = list(scores)
        rest[top] = -math.inf
        second = rest.index(max(rest))
        if total < off.MIN_EVIDENCE or scores[top] <= 0:
            runner = codes[top] if scores[top] > 0 and top != lex.other else None
            confidence = 0.05 + 0.2 * min(total / off.MIN_EVIDENCE, 1.0) if total else 0.05
            return off.OfflinePrediction(OTHER, round(confidence, 4), 0.0, runner, evidence)
        strength = 1.0 - math.exp(-total / off.STRENGTH_SCALE)
        p1 = scores[top] / total
        p2 = max(scores[second], 0.0) / total
        confidence = min(max(p1 * strength, 0.0), 1.0)
        margin = min(max((p1 - p2) * strength, 0.0), 1.0)
        runner = codes[second] if scores[second] > 0 else None
        return off.OfflinePrediction(
            codes[top], round(confidence, 4), round(margin, 4), runner, evidence
        )


# --- inputs --------------------------------------------------------------------------------------
HOSTILE = [
    "",
    " ",
    "|||",
    "||| , / ·",
    "\n\t;;",
    "🍕🍔🍟",
    "(치킨) [피자] {족발}",
    "짜장면 7000원 | 짬뽕 8,000 | 탕수육 ₩18,000 | 1.5만원",
    "ＦＵＬＬＷＩＤＴＨ ｐｉｚｚａ ｂｕｒｇｅｒｓ",
    "ﾁｷﾝ ｶﾞﾙﾋﾞ 가ㄹ비 ᄀᆞᆯ비",
    "pizzas pizza's PIZZA Pizza-Hut fried chicken chickens",
    "돈까스김밥|불고기피자|고등어봉초밥|과일화채|모둠꼬치",
    "강남역점 본점 2호점 중화반점 신흥각 동해루",
    "a" * 7000,
    "치킨" * 4000,
    "|".join(["김치찌개"] * 300),
    "_" * 50 + "떡볶이" + "_" * 50,
    "\u200b\u200d짬뽕\ufeff",
    "'''",
    "0000 1234 56789",
    "café crème brûlée",
    "Ｃｏｆｆｅｅ 아메리카노 latte lattes",
]
MISSING: list[object] = [None, float("nan"), pd.NA, np.nan]


def _csv_rows() -> list[tuple[object, object, object]]:
    with DATA.open(encoding="utf-8", newline="") as f:
        return [(r["name"], r["menu"], r["description"]) for r in csv.DictReader(f)]


def _hostile_rows() -> list[tuple[object, object, object]]:
    rnd = random.Random(7)
    pool: list[object] = HOSTILE + MISSING
    rows = [(a, b, c) for a in pool[:6] for b in pool for c in pool[:4]]
    rows += [(rnd.choice(pool), rnd.choice(pool), rnd.choice(pool)) for _ in range(300)]
    return rows


def _world_rows(name: str, n: int = 400) -> list[tuple[object, object, object]]:
    world = sw.resolve_world(name, 1)
    model = sd._model()
    rng = np.random.default_rng([1, n, 20261031])
    wrnd = random.Random(3)
    table = sd._make_restaurants(model, n, rng, sw._chooser(world, wrnd))["table"]
    menus = table["menu"].to_pylist()
    if world.menu_affix_share > 0:
        menus = sw._house_menus(menus, world.menu_affix_share, wrnd)
    return list(
        zip(table["name"].to_pylist(), menus, table["description"].to_pylist(), strict=True)
    )


def _same(rows: list[tuple[object, object, object]]) -> None:
    labeler = off.OfflineLabeler()
    oracle = _Oracle(labeler._lex)
    new = labeler.predict_many(rows)  # type: ignore[arg-type]
    again = labeler.predict_many(rows)  # type: ignore[arg-type]  # from the caches
    old = [oracle.predict(*row) for row in rows]
    assert new == old
    assert again == old


def test_same_predictions_on_the_labeled_set():
    _same(_csv_rows())


def test_same_predictions_on_hostile_strings():
    _same(_hostile_rows())


@pytest.mark.parametrize("world", sw.world_names())
def test_same_predictions_on_generated_worlds(world):
    rows = _world_rows(world)
    assert len(set(rows)) > len(rows) // 2  # varied names and menus, not one repeated row
    _same(rows)


def test_trie_walk_matches_the_lookahead_regex():
    lex = off.OfflineLabeler()._lex
    words = sorted(t for t in lex.full if not t.isascii())
    pattern = _old_trie_pattern(words)
    trie = off._trie(words)
    texts = [" ".join(words[i : i + 7]) for i in range(0, len(words), 5)]
    texts += ["".join(words[i : i + 4]) for i in range(0, len(words), 3)] + HOSTILE
    for text in texts:
        old = [(m.start(), m.group(1)) for m in pattern.finditer(text)]
        assert off._trie_matches(trie, text) == old


@pytest.mark.parametrize(
    "values",
    [
        [],
        [pd.Timestamp("2026-12-04 23:00", tz="UTC")] * 5,
        [pd.Timestamp("2026-12-04 23:00", tz="UTC"), pd.Timestamp("2026-12-04 22:00", tz="UTC")],
        [None, pd.Timestamp("2026-12-04 23:00", tz="UTC")],
    ],
)
def test_stamps_equal_to_datetime(values):
    """label_frame's _finish converts the shared stamp once; the result is to_datetime's."""
    got, want = _stamps(list(values)), pd.to_datetime(list(values), utc=True)
    assert got.dtype == want.dtype
    pd.testing.assert_index_equal(got, want)
