"""The feature registry: every ranker feature is one entry here, and nowhere else by name.

An entry is the feature's name, the SQL expression that computes it in the candidate-feature query
(`sql/candidate_features.sql`, whose table aliases are `q` the query, `ip` rk_snap_ind_prod, `ic`
rk_snap_ind_cat, `gp` rk_snap_prod, `tokf` the candidate with its menu-token aggregates incl. the
basket shares, `gb` rk_snap_basket), whether it is categorical,
and the definition / reason that `features.md` shows. The registry order is the booster's column
order. Adding a feature: one line here, plus (if it needs a new statistic) one column in the
snapshot SQL it references, or for a new aggregate over the menu tokens one in
`token_features.py`; then regenerate the docs with
`python -m recsys_assets.ranking.features` (a test fails while features.md is stale).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Feature:
    name: str
    sql: str  # expression over the aliases of sql/candidate_features.sql
    definition: str
    why: str
    categorical: bool = False  # an integer code LightGBM splits on as a category


REGISTRY: tuple[Feature, ...] = (
    Feature(
        "ind_penetration",
        "ip.ind_penetration",
        "share of the industry's restaurants (signed up before S) that bought the product before S",
        "what restaurants of this kind buy",
    ),
    Feature(
        "ind_smoothed_penetration",
        "ip.ind_smoothed_penetration",
        "penetration shrunk toward global penetration with 5 pseudo-restaurants "
        "(`warehouse.tables`)",
        "the industry-popularity baseline score; robust for small industries",
    ),
    Feature(
        "ind_lift",
        "ip.ind_lift",
        "industry penetration / global penetration",
        "products specific to the industry",
    ),
    Feature(
        "ind_recency_score",
        "ip.ind_recency_score",
        "quantity per industry restaurant, each order weighted by `0.5^(age/90 days)`",
        "recent demand counts more",
    ),
    Feature(
        "ind_qty_per_restaurant",
        "ip.ind_qty_per_restaurant",
        "total quantity / industry restaurants",
        "volume, not just reach",
    ),
    Feature(
        "ind_rank",
        "ip.ind_rank",
        "rank of the product within the industry by smoothed penetration",
        "the baseline's own ordering",
    ),
    Feature(
        "ind_new_penetration",
        "ip.ind_new_penetration",
        "share of the industry's restaurants whose first 30 days ended before S that bought "
        "the product in their first 30 days, smoothed toward the global value (5 "
        "pseudo-restaurants)",
        "cold-start behaviour differs from established restaurants",
    ),
    Feature(
        "ind_new_qty",
        "ip.ind_new_qty",
        "mean first-30-day quantity of the product per such restaurant",
        "expected volume in the window being predicted (drives the graded relevance)",
    ),
    Feature(
        "ind_cat_affinity",
        "ic.ind_cat_affinity",
        "(industry's share of penetration mass in the product's category) / (global share)",
        "generalises to products the industry rarely bought",
    ),
    Feature(
        "global_penetration",
        "gp.global_penetration",
        "share of all restaurants signed up before S that bought the product before S",
        "popularity fallback",
    ),
    Feature(
        "global_rank",
        "gp.global_rank",
        "rank by global penetration",
        "",
    ),
    Feature(
        "global_trend",
        "gp.global_trend",
        "`(qty last 30 days + 1) / (qty last 90 days / 3 + 1)` before S",
        "rising / falling products, seasonality",
    ),
    Feature(
        "global_new_penetration",
        "gp.global_new_penetration",
        "share of restaurants (window ended before S) buying it in their first 30 days",
        "cold-start popularity",
    ),
    Feature(
        "category_code",
        "gp.category_code",
        "product category, coded by `rk_vocab_category`",
        "category effects",
        categorical=True,
    ),
    Feature(
        "log_unit_price",
        "gp.log_unit_price",
        "`ln(1 + unit_price)`",
        "cheap staples vs. expensive equipment",
    ),
    Feature(
        "token_lift_max",
        "coalesce(tokf.token_lift_max, 1.0)",
        "max over the restaurant's known menu tokens t of `lift(t,p) = P(p | t) / P(p)`; 1 "
        "when it has no known token (no evidence, never NULL, so training and serving agree "
        "on unseen menus)",
        '"치즈볼 on the menu → mozzarella"',
    ),
    Feature(
        "token_log_lift_mean",
        "coalesce(tokf.token_log_lift_mean, 0.0)",
        "mean of `ln lift(t,p)` over known tokens; 0 without tokens",
        "consensus of all menu items",
    ),
    Feature(
        "n_known_tokens",
        "coalesce(tokf.n_known_tokens, 0)",
        "menu tokens that have an association table entry at S",
        "how much menu evidence there is",
    ),
    Feature(
        "token_pen_max",
        "tokf.token_pen_max",
        "max over tokens of smoothed `P(p | t)`",
        "absolute, not relative, probability",
    ),
    Feature(
        "token_qty_max",
        "tokf.token_qty_max",
        "max over tokens of the mean first-30-day quantity of p among restaurants with t",
        "expected volume given the menu",
    ),
    Feature(
        "token_qty_mean",
        "tokf.token_qty_mean",
        "mean over tokens of the mean first-30-day quantity of p among restaurants with t",
        "expected volume given the menu",
    ),
    Feature(
        "token_share_max",
        "coalesce(tokf.share_max, gb.basket_share, 0.0)",
        "max over the restaurant's known menu tokens t of the mean basket share of p (p's share "
        "of the quantity a restaurant ordered before S, its whole history) among restaurants "
        "with t, smoothed toward the mean over all of them (`rk_snap_basket`) with 5 "
        "pseudo-restaurants; that overall share when it has no known token",
        "what a menu's dishes use, from every order of earlier restaurants (several times the "
        "first-window evidence), per restaurant so large buyers do not dominate",
    ),
    Feature(
        "token_share_mean",
        "coalesce(tokf.share_mean, gb.basket_share, 0.0)",
        "mean of the same smoothed basket share over the known tokens",
        "consensus of all menu items",
    ),
    Feature(
        "token_share_log_lift_max",
        "coalesce(tokf.share_log_lift_max, 0.0)",
        "max over known tokens of `ln(share(t,p) / overall share(p))`; 0 without tokens",
        "products specific to one of the dishes",
    ),
    Feature(
        "token_share_log_lift_sum",
        "coalesce(tokf.share_log_lift_sum, 0.0)",
        "sum of `ln(share(t,p) / overall share(p))` over known tokens; 0 without tokens",
        "evidence adds up over dishes sharing an ingredient (and against products no dish uses)",
    ),
    Feature(
        "label_confidence",
        "q.label_confidence",
        "the labeler's confidence in the industry label (1.0 when the caller gives the industry)",
        "trust industry features less when unsure",
    ),
    Feature(
        "industry_code",
        "q.industry_code",
        "position of the industry in the list the model was trained with "
        "(`rk_vocab_industry`, stored in the model; serving maps names to codes with it, an "
        "unknown industry gets `other`'s code)",
        "industry-specific corrections",
        categorical=True,
    ),
    Feature(
        "region_code",
        "q.region_code",
        "region coded by `rk_vocab_region`; NULL when absent or unseen",
        "regional taste",
        categorical=True,
    ),
    Feature(
        "size_ord",
        "q.size_ord",
        "small 0, medium 1, large 2; NULL when absent",
        "size changes the volume mix",
    ),
)

# Feature columns, in the order the booster sees them. Categorical ones are integer codes.
FEATURES: tuple[str, ...] = tuple(f.name for f in REGISTRY)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in REGISTRY if f.categorical)


def feature_columns_sql() -> str:
    """The SELECT list of the candidate-feature query: `<sql> AS <name>` per feature, in order."""
    return ",\n    ".join(f"{f.sql} AS {f.name}" for f in REGISTRY)


FEATURES_MD = Path(__file__).with_name("features.md")
_BEGIN = "<!-- BEGIN feature table: generated from ranking/features.py, do not edit by hand -->"
_END = "<!-- END feature table -->"


def feature_table_md() -> str:
    """The markdown table of features.md (name, definition, why, SQL)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")  # a bare | would split the cell, even inside `code`

    rows = ["| feature | definition | why | SQL |", "|---|---|---|---|"]
    for f in REGISTRY:
        name = f"`{f.name}` (categorical)" if f.categorical else f"`{f.name}`"
        rows.append(f"| {name} | {cell(f.definition)} | {cell(f.why)} | `{cell(f.sql)}` |")
    return "\n".join(rows)


def render_features_md(text: str) -> str:
    """`text` with the generated block between the markers replaced by the registry's table."""
    head, sep, rest = text.partition(_BEGIN)
    _, sep2, tail = rest.partition(_END)
    if not sep or not sep2:
        raise ValueError(f"features.md lacks the markers {_BEGIN!r} ... {_END!r}")
    return f"{head}{_BEGIN}\n{feature_table_md()}\n{_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite features.md from the registry; `--check` only reports whether it is current."""
    argv = sys.argv[1:] if argv is None else argv
    current = FEATURES_MD.read_text(encoding="utf-8")
    wanted = render_features_md(current)
    if "--check" in argv:
        if current != wanted:
            print(f"{FEATURES_MD} is stale: run python -m recsys_assets.ranking.features")
            return 1
        return 0
    FEATURES_MD.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
