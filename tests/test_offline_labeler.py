"""Behaviour of the offline (lexicon) industry labeler, measured on hand-written real restaurants.

The CSV's ``holdout`` block was written after the lexicon was frozen: its accuracy is an honest
estimate.
"""

from __future__ import annotations

import csv
import math
from collections import Counter

import pytest

from recsys_assets.datafiles import DATA_DIR
from recsys_assets.labeling.offline import OfflineLabeler, OfflinePrediction, split_menu
from recsys_assets.taxonomy import INDUSTRY_CODES, OTHER

DATA = DATA_DIR / "real_world_restaurants.csv"  # the packaged gold file (`recsys label eval`)


@pytest.fixture(scope="module")
def labeler() -> OfflineLabeler:
    return OfflineLabeler()


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with DATA.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def predictions(labeler, rows) -> list[OfflinePrediction]:
    return labeler.predict_many((r["name"], r["menu"], r["description"]) for r in rows)


def _accuracy(rows, preds, split: str | None = None) -> float:
    pairs = [
        (r, p) for r, p in zip(rows, preds, strict=False) if split is None or r["split"] == split
    ]
    return sum(p.industry == r["industry"] for r, p in pairs) / len(pairs)


# --- the data set itself --------------------------------------------------------------------------
def test_dataset_shape(rows):
    assert len(rows) >= 120
    assert {r["industry"] for r in rows} == set(INDUSTRY_CODES)
    counts = Counter(r["industry"] for r in rows)
    assert min(counts.values()) >= 5, counts
    assert {r["split"] for r in rows} == {"tune", "holdout"}
    assert sum(r["split"] == "holdout" for r in rows) >= 30


# --- accuracy -------------------------------------------------------------------------------------
def test_overall_accuracy(rows, predictions):
    misses = [
        (r["name"], r["menu"], r["industry"], p.industry)
        for r, p in zip(rows, predictions, strict=False)
        if p.industry != r["industry"]
    ]
    assert _accuracy(rows, predictions) >= 0.90, misses


def test_holdout_accuracy(rows, predictions):
    assert _accuracy(rows, predictions, "holdout") >= 0.85


def test_per_industry_floor(rows, predictions):
    by_code: dict[str, list[bool]] = {}
    for r, p in zip(rows, predictions, strict=False):
        by_code.setdefault(r["industry"], []).append(p.industry == r["industry"])
    for code, hits in by_code.items():
        if len(hits) >= 5:
            assert sum(hits) / len(hits) >= 0.6, code


def test_outputs_are_well_formed(predictions):
    for p in predictions:
        assert p.industry in INDUSTRY_CODES
        assert 0.0 <= p.confidence <= 1.0
        assert 0.0 <= p.margin <= 1.0
        assert p.runner_up is None or (p.runner_up in INDUSTRY_CODES and p.runner_up != p.industry)
        assert isinstance(p.evidence, tuple)


def test_version_is_named(labeler):
    assert labeler.version.startswith("offline-lexicon-")


# --- the rules from the issue ---------------------------------------------------------------------
def test_chikichiki_bangbang_is_korean(labeler):
    assert labeler.predict("치키치키뱅뱅", "한방오리백숙").industry == "korean"
    # even when the name literally says chicken, a 백숙 menu decides
    assert labeler.predict("치킨뱅뱅", "한방오리백숙").industry == "korean"


def test_menu_outweighs_name(labeler):
    p = labeler.predict("행복치킨", "짜장면|짬뽕|탕수육")
    assert p.industry == "chinese"
    assert p.runner_up == "chicken"
    # even a known chain name loses to a menu that clearly sells something else
    assert labeler.predict("교촌치킨", "짜장면|짬뽕|탕수육").industry == "chinese"


def test_name_alone_is_a_weak_hint(labeler):
    name_only = labeler.predict("행복치킨", None)
    with_menu = labeler.predict("행복치킨", "후라이드|양념치킨|순살치킨")
    assert name_only.industry == with_menu.industry == "chicken"
    assert name_only.confidence < with_menu.confidence
    assert name_only.margin < with_menu.margin


def test_mixed_izakaya_menu_is_pub(labeler):
    # 봉초밥 and 모둠꼬치 are izakaya staples and 과일화채 is a classic 주점 anju: a pub, not a sushi bar
    p = labeler.predict(None, "고등어봉초밥|과일화채|모둠꼬치")
    assert p.industry == "pub"
    assert p.runner_up == "japanese"


def test_compound_items_use_their_head(labeler):
    assert labeler.predict(None, "돈까스김밥").industry == "bunsik"
    assert labeler.predict(None, "불고기피자").industry == "pizza"
    assert labeler.predict(None, "새우튀김우동").industry == "japanese"
    assert labeler.predict(None, "전복죽").industry == "korean"


@pytest.mark.parametrize(
    ("a", "b", "industry"),
    [
        ("돈가스", "돈까스", "japanese"),
        ("자장면", "짜장면", "chinese"),
        ("프라이드치킨", "후라이드치킨", "chicken"),
        ("떡뽁이", "떡볶이", "bunsik"),
        ("주꾸미볶음", "쭈꾸미볶음", "seafood"),
        ("아귀찜", "아구찜", "seafood"),
        ("크로와상", "크루아상", "bakery"),
    ],
)
def test_spelling_variants_agree(labeler, a, b, industry):
    pa, pb = labeler.predict(None, a), labeler.predict(None, b)
    assert pa.industry == pb.industry == industry
    assert pa.confidence == pytest.approx(pb.confidence)


@pytest.mark.parametrize(
    ("menu", "industry"),
    [
        ("Margherita pizza|Pepperoni pizza", "pizza"),
        ("Cheeseburger|French fries|Milkshake", "burger"),
        ("Iced latte|Cappuccino|Cheesecake", "cafe_dessert"),
        ("Salmon poke|Greek yogurt", "salad"),
        ("Pho bo|Banh mi", "asian"),
        ("Tonkotsu ramen|Gyoza", "japanese"),
    ],
)
def test_english_menus(labeler, menu, industry):
    assert labeler.predict(None, menu).industry == industry


def test_english_words_match_whole_words_only(labeler):
    # "pho" must not fire inside "phone", nor "tea" inside "steak"
    assert labeler.predict("Phone Repair", None).industry == OTHER
    assert labeler.predict(None, "Ribeye steak|T-bone steak").industry == "western"


def test_generic_items_weigh_little(labeler):
    base = labeler.predict(None, "짜장면|짬뽕")
    with_sides = labeler.predict(None, "짜장면|짬뽕|공기밥|콜라|사이다|소주|맥주")
    assert with_sides.industry == "chinese"
    assert with_sides.margin >= base.margin - 0.1
    assert labeler.predict(None, "콜라|사이다|공기밥").industry == OTHER


def test_non_food_business_is_other(labeler):
    assert labeler.predict("행복공인중개사", None).industry == OTHER
    assert labeler.predict("블루클럽 헤어", "커트|펌|염색").industry == OTHER


def test_description_is_a_hint(labeler):
    p = labeler.predict("모모", None, "정통 나폴리 화덕 피자 전문점")
    assert p.industry == "pizza"
    # but it does not override a clear menu
    assert labeler.predict("모모", "짜장면|짬뽕|탕수육", "피자도 팝니다").industry == "chinese"


# --- robustness -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [None, float("nan"), "", "   ", "|||", "🍕🍔🍟", "\u200b\ufeff", "nan", 12345, "₩8,000|7000원"],
)
def test_robust_to_missing_and_odd_inputs(labeler, value):
    p = labeler.predict(value, value, value)
    assert p.industry in INDUSTRY_CODES
    assert 0.0 <= p.confidence <= 1.0 and 0.0 <= p.margin <= 1.0


def test_empty_input_is_other_with_low_confidence(labeler):
    p = labeler.predict(None, None, None)
    assert p.industry == OTHER
    assert p.confidence < 0.3
    assert p.margin == 0.0
    assert p.evidence == ()


def test_pandas_na_is_missing(labeler):
    pd = pytest.importorskip("pandas")
    p = labeler.predict(pd.NA, pd.NA, None)
    assert p.industry == OTHER


def test_huge_inputs_are_bounded(labeler):
    huge_menu = "|".join(["짜장면 7,000원", "🍜", "짬뽕"] * 20_000)
    p = labeler.predict("가" * 100_000, huge_menu, "x" * 1_000_000)
    assert p.industry == "chinese"
    assert len(p.evidence) <= 24


def test_unicode_normalisation(labeler):
    # fullwidth letters/digits/bars and decomposed Hangul (NFD) behave like their plain forms
    import unicodedata

    nfd = unicodedata.normalize("NFD", "짜장면|짬뽕")
    assert labeler.predict(None, nfd).industry == "chinese"
    assert labeler.predict(None, "ＰＩＺＺＡ｜ｐｅｐｐｅｒｏｎｉ").industry == "pizza"


def test_emoji_and_brackets_do_not_hide_dishes(labeler):
    assert labeler.predict(None, "🍗[BEST] 후라이드치킨 (한마리)|🍺생맥주").industry == "chicken"


def test_deterministic(labeler, rows):
    sample = [(r["name"], r["menu"], r["description"]) for r in rows[:40]]
    assert labeler.predict_many(sample) == OfflineLabeler().predict_many(sample)
    assert labeler.predict_many(sample) == labeler.predict_many(list(reversed(sample)))[::-1]


def test_predict_many_accepts_two_tuples(labeler):
    out = labeler.predict_many([("행복치킨", "후라이드"), ("", None, None)])
    assert [p.industry for p in out] == ["chicken", OTHER]


# --- split_menu -----------------------------------------------------------------------------------
def test_split_menu_strips_prices_and_noise():
    assert split_menu(
        "짜장면 7000원|아메리카노 4,500|₩8,000 짬뽕|  |🍕 피자 (L)|탕수육 1.5만원"
    ) == [
        "짜장면",
        "아메리카노",
        "짬뽕",
        "피자 L",
        "탕수육",
    ]


def test_split_menu_other_separators_and_empties():
    assert split_menu(None) == []
    assert split_menu(float("nan")) == []
    assert split_menu("") == []
    assert split_menu("7000원|₩3,000") == []
    assert split_menu("후라이드, 양념 / 반반\n생맥주") == ["후라이드", "양념", "반반", "생맥주"]
    assert split_menu("ＰＩＺＺＡ　１２,０００원") == ["PIZZA"]


def test_split_menu_keeps_numbers_that_are_not_prices():
    assert split_menu("7분돼지김치|500cc 생맥주|2인 세트") == [
        "7분돼지김치",
        "500cc 생맥주",
        "2인 세트",
    ]


def test_confidence_is_finite(labeler, predictions):
    assert all(math.isfinite(p.confidence) and math.isfinite(p.margin) for p in predictions)


# --- the caches change nothing --------------------------------------------------------------------
def _oracle_split_menu(menu) -> list[str]:
    """split_menu as it was before the per-piece cache."""
    from recsys_assets.labeling import offline as o

    text = o._to_text(menu, o.MAX_FIELD_CHARS["menu"])
    items: list[str] = []
    for raw_piece in o._PRIMARY_SPLIT_RE.split(text) if text else []:
        for sub in o._SECONDARY_SPLIT_RE.split(o._PRICE_RE.sub(" ", raw_piece)):
            item = o._clean(sub)
            if item and o._has_content(item):
                items.append(item)
                if len(items) >= o.MAX_ITEMS:
                    return items
    return items


def _oracle_predict(lex, name, menu, description) -> OfflinePrediction:
    """OfflineLabeler.predict before the name/description/menu-piece caches (no cache at all)."""
    from recsys_assets.labeling import offline as o

    scores, evidence = [0.0] * lex.n, []
    text = o._canon(o._normalize(o._to_text(name, o.MAX_FIELD_CHARS["name"])))
    if text:
        vec, ev = o._score_name(lex, text)
        scores = [a + b for a, b in zip(scores, vec, strict=False)]
        evidence += ev
    item_tops, rank = set(), 0
    for item in _oracle_split_menu(menu):
        scored = o._score_item(lex, o._canon(item.lower()))
        if not scored.terms:
            continue
        weight = 1.0
        if not scored.generic:
            weight = 1.0 + o.POSITION_BONUS * o.POSITION_DECAY**rank
            rank += 1
            item_tops.add(scored.top)
        for i, w in scored.sparse:
            scores[i] += weight * w
        evidence += ["menu:" + t for t in scored.terms]
    text = o._canon(o._normalize(o._to_text(description, o.MAX_FIELD_CHARS["description"])))
    if text:
        vec, ev = o._score_description(lex, text)
        scores = [a + b for a, b in zip(scores, vec, strict=False)]
        evidence += ev
    if lex.pub is not None and len(item_tops) >= 3 and scores[lex.pub] > 0:
        scores[lex.pub] *= 1.5
    order = sorted(range(lex.n), key=lambda i: (-scores[i], i))
    top, second = order[0], order[1]
    total = sum(s for s in scores if s > 0)
    ev = tuple(dict.fromkeys(evidence))[: o.MAX_EVIDENCE]
    if total < o.MIN_EVIDENCE or scores[top] <= 0:
        runner = lex.codes[top] if scores[top] > 0 and top != lex.other else None
        confidence = 0.05 + 0.2 * min(total / o.MIN_EVIDENCE, 1.0) if total else 0.05
        return OfflinePrediction(OTHER, round(confidence, 4), 0.0, runner, ev)
    strength = 1.0 - math.exp(-total / o.STRENGTH_SCALE)
    p1, p2 = scores[top] / total, max(scores[second], 0.0) / total
    confidence = min(max(p1 * strength, 0.0), 1.0)
    margin = min(max((p1 - p2) * strength, 0.0), 1.0)
    runner = lex.codes[second] if scores[second] > 0 else None
    return OfflinePrediction(lex.codes[top], round(confidence, 4), round(margin, 4), runner, ev)


def test_cached_predictions_equal_the_uncached_oracle(rows, tmp_path):
    """Labels of a generated sample, the gold file and odd inputs, each predicted twice (the
    second time from the caches), are exactly what the uncached scoring gives."""
    import pyarrow.parquet as pq

    from recsys_assets.sample_data import generate_sample

    files = generate_sample(
        tmp_path, scale="small", seed=3, n_restaurants=1500, world="house_menus"
    )
    sample = pq.read_table(files.restaurants, columns=["name", "menu", "description"])
    inputs = list(zip(*(sample.column(c).to_pylist() for c in sample.column_names), strict=True))
    inputs += [(r["name"], r["menu"], r["description"]) for r in rows]
    many = "|".join(f"{i}번 김치찌개, 공기밥 / 콜라" for i in range(200))
    inputs += [(None, many, float("nan")), (42, "짜장면|" * 3000, "x" * 9000), ("", "", None)]
    labeler = OfflineLabeler()
    split = [split_menu(menu) for _, menu, _ in inputs]
    assert split == [_oracle_split_menu(menu) for _, menu, _ in inputs]
    first, again = labeler.predict_many(inputs), labeler.predict_many(inputs)
    oracle = [_oracle_predict(labeler._lex, *row) for row in inputs]
    assert first == oracle and again == oracle
    assert len({p.industry for p in oracle}) > 10  # the sample exercises most of the taxonomy
