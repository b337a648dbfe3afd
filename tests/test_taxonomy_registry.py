"""The taxonomy registry (recsys_assets/data/taxonomy.yaml) is the one place an industry is defined.

A fake industry added to a temporary copy of the registry must reach every consumer: the LLM
prompt and answer schema, the offline lexicon, the sample generator and the README table. Bad
entries in the data files fail at load time with the file and line.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from recsys_assets import sample_data, taxonomy
from recsys_assets.datafiles import DataFileError
from recsys_assets.labeling import llm, offline
from recsys_assets.labeling.offline import OfflineLabeler
from recsys_assets.taxonomy import DEFAULT_PATH, Taxonomy

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PACKAGED = DEFAULT_PATH.read_text(encoding="utf-8")

SOUP = """
  - code: soup_test
    name_ko: 수프테스트
    name_en: Soup test
    examples: [수프테스트국, 테스트스프]
    lexicon:
      - dish 2.0: 수프테스트국 테스트스프
      - brand 3.0: 수프테스트하우스
    sample:
      share: 50
      menu_price: [7000, 9000]
      emoji: "🥣"
      staples: 소 사골*3, 대파*1
      cross_sell: [korean]
      names:
        cores: [수프테스트]
        fun: [테스트 수프집]
        english: [Soup Test House]
      menu:
        - 수프테스트국 @Test Soup ; 5 ; 소 사골*2, 대파*0.5
        - 테스트스프 ; 3 ; 소 양지*1
"""
# The same industry without a `sample` block: the documented default is "never generated".
SOUP_NO_SAMPLE = SOUP[: SOUP.index("    sample:")]


def _write(tmp_path: Path, text: str, name: str = "taxonomy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _edited(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    """A copy of the registry with the first ``old`` replaced; returns it and the edited line."""
    assert old in PACKAGED, old
    text = PACKAGED.replace(old, new, 1)
    line = PACKAGED[: PACKAGED.index(old)].count("\n") + 1
    return _write(tmp_path, text), line


@pytest.fixture(scope="module")
def soup(tmp_path_factory) -> Taxonomy:
    return taxonomy.load(_write(tmp_path_factory.mktemp("registry"), PACKAGED + SOUP))


# --- one entry reaches every consumer ------------------------------------------------------------
def test_a_new_industry_reaches_the_llm_prompt_and_answer_schema(soup):
    line = "- soup_test: 수프테스트 / Soup test (수프테스트국, 테스트스프)"
    for items_per_call in (1, 8):
        assert line in llm.system_prompt(items_per_call, soup)
        assert line not in llm.system_prompt(items_per_call)
    single = llm.response_schema(1, soup)["schema"]["properties"]["industry"]["enum"]
    batch = llm.response_schema(8, soup)["schema"]["properties"]["items"]["items"]
    assert single == list(soup.codes) == batch["properties"]["industry"]["enum"]
    assert (
        "soup_test" in single
        and "soup_test" not in llm.response_schema(1)["schema"]["properties"]["industry"]["enum"]
    )


def test_a_new_industry_reaches_the_offline_lexicon(soup):
    labeler = OfflineLabeler(soup)
    by_menu = labeler.predict("우리집", "수프테스트국 8,000원|공기밥", None)
    assert by_menu.industry == "soup_test" and "menu:수프테스트국" in by_menu.evidence
    assert labeler.predict("수프테스트하우스 강남점", "", None).industry == "soup_test"  # brand
    assert (
        OfflineLabeler().predict("우리집", "수프테스트국 8,000원|공기밥", None).industry
        != "soup_test"
    )
    # the rest of the lexicon is untouched: a chicken place stays chicken
    assert labeler.predict("치킨집", "후라이드치킨|양념치킨", None).industry == "chicken"


def test_a_new_industry_reaches_the_sample_generator(soup, tmp_path):
    files = sample_data.generate_sample(
        tmp_path, n_restaurants=300, seed=5, fmt="parquet", registry=soup
    )
    truth = pd.read_parquet(files.ground_truth / "restaurant_truth.parquet")
    rest = pd.read_parquet(files.restaurants).merge(truth[["restaurant_id", "industry"]])
    soups = rest[rest["industry"] == "soup_test"]
    assert len(soups) >= 30  # share 50 of ~150
    params = json.loads((files.ground_truth / "params.json").read_text(encoding="utf-8"))
    assert "soup_test" in params["industries"]
    with_menu = soups[soups["menu"] != ""]
    assert with_menu["menu"].str.contains("수프테스트국|테스트스프|Test Soup").mean() > 0.9
    # the recipe drives demand: its staple (소 사골) is ordered by the soup restaurants
    orders = pd.read_parquet(files.orders).merge(pd.read_parquet(files.products), on="product_id")
    soup_orders = orders[orders["restaurant_id"].isin(soups["restaurant_id"])]
    assert soup_orders["name"].str.startswith("소 사골").mean() > 0.1
    # and the labeler built from the same registry recognises the generated restaurants
    preds = OfflineLabeler(soup).predict_many(
        zip(soups["name"], soups["menu"], soups["description"], strict=True)
    )
    assert sum(p.industry == "soup_test" for p in preds) / len(preds) > 0.8


def test_an_industry_without_a_sample_block_is_never_generated(tmp_path):
    reg = taxonomy.load(_write(tmp_path, PACKAGED + SOUP_NO_SAMPLE))
    assert reg.by_code["soup_test"].sample is None
    files = sample_data.generate_sample(tmp_path / "out", n_restaurants=400, seed=5, registry=reg)
    truth = pd.read_parquet(files.ground_truth / "restaurant_truth.parquet")
    assert "soup_test" not in set(truth["industry"])
    assert set(truth["industry"]) == {c for c in reg.codes if c != "soup_test"}
    assert OfflineLabeler(reg).predict("", "테스트스프", None).industry == "soup_test"


def test_a_new_industry_reaches_the_readme_table(soup):
    readme = README.read_text(encoding="utf-8")
    assert (
        "| `soup_test` | 수프테스트 | Soup test | 수프테스트국·테스트스프 |"
        in taxonomy.markdown_table(soup)
    )
    assert taxonomy.readme_with_table(readme, soup) != readme  # the check below would fail


# --- the packaged registry and its consumers agree ------------------------------------------------
def test_readme_taxonomy_table_matches_the_registry():
    readme = README.read_text(encoding="utf-8")
    assert taxonomy.readme_with_table(readme) == readme, (
        "README.md's taxonomy table is stale: run python -m recsys_assets.taxonomy --write README.md"
    )


def test_readme_check_command_fails_on_a_stale_table(tmp_path):
    stale = README.read_text(encoding="utf-8").replace("| `pizza` | 피자 | Pizza | 피자 |\n", "", 1)
    path = _write(tmp_path, stale, "README.md")
    cmd = [sys.executable, "-m", "recsys_assets.taxonomy", "--check", str(path)]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 1 and "taxonomy table differs" in out.stderr.splitlines()[0]
    subprocess.run([*cmd[:3], "--write", str(path)], check=True, cwd=ROOT, timeout=60)
    assert path.read_text(encoding="utf-8") == README.read_text(encoding="utf-8")


def test_every_packaged_industry_is_seen_by_every_consumer():
    prompt = llm.system_prompt(1)
    enum = llm.response_schema(1)["schema"]["properties"]["industry"]["enum"]
    table = taxonomy.markdown_table()
    lex = offline._compiled(taxonomy.DEFAULT)
    model = sample_data._model()
    for ind in taxonomy.INDUSTRIES:
        assert f"- {ind.code}: {ind.name_ko} / {ind.name_en}" in prompt
        assert ind.code in enum and f"| `{ind.code}` |" in table
        column = lex.idx[ind.code]
        assert any(e.weights[column] > 0 for e in lex.full.values()), ind.code
        assert model.items_by_industry[ind.code] and model.staples[model.ind_index[ind.code]].any()
    assert {code for _, _, code, _ in llm.HARD_EXAMPLES} <= set(taxonomy.INDUSTRY_CODES)


def test_the_packaged_constants_come_from_the_registry_file():
    reloaded = taxonomy.load(DEFAULT_PATH)
    assert reloaded == taxonomy.DEFAULT and reloaded.codes == taxonomy.INDUSTRY_CODES
    assert taxonomy.OTHER in taxonomy.INDUSTRY_CODES and taxonomy.describe() == reloaded.describe()


# --- bad entries fail at load time with the file and line -----------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "offset", "message"),  # offset: reported line - first edited line
    [
        (
            "    name_en: Fried chicken\n",
            "    name_en: Fried chicken\n    colour: red\n",
            1,
            "industry 'chicken': unknown key 'colour'",
        ),
        ("  - code: korean\n", "  - code: chicken\n", 0, "duplicate industry code 'chicken'"),
        ("      - dish 1.0: 치킨 ", "      - dsh 1.0: 치킨 ", 0, "scope one of dish, name"),
        ("      - dish 0.3: 콤보\n", "      - dish heavy: 콤보\n", 0, "lexicon weight 'heavy'"),
        (
            "    name_ko: 치킨\n",
            "    name_ko: 치킨\n    name_ko: 닭\n",
            1,
            "duplicate key 'name_ko'",
        ),
        (
            "        - 양념치킨 @Yangnyeom Chicken ; 9 ; 생닭 10호*1.5, 양념치킨 소스*2\n",
            "        - 양념치킨 @Yangnyeom Chicken ; 9 ; 생닭 10호 1.5\n",
            0,
            "is not 'product*positive weight'",
        ),
        (
            "        - 양념치킨 @Yangnyeom Chicken ; 9 ; 생닭 10호*1.5, 양념치킨 소스*2\n",
            "        - 양념치킨 @Yangnyeom Chicken ; 생닭 10호*1.5\n",
            0,
            "is not 'names @English",
        ),
        ("      share: 12\n", "      share: -1\n", 0, "sample.share must be a positive number"),
        (
            "      cross_sell: [bunsik, pub]\n",
            "      cross_sell: [bunsik, pubs]\n",
            0,
            "cross_sell 'pubs' is not an industry",
        ),
        (
            "    examples: [후라이드, 양념, 통닭, 순살, 닭강정]\n",
            "    examples: [후라이드, [양념\n",
            1,
            "not valid YAML",
        ),
    ],
)
def test_bad_registry_entries_name_the_file_and_line(tmp_path, old, new, offset, message):
    path, line = _edited(tmp_path, old, new)
    with pytest.raises(DataFileError) as err:
        taxonomy.load(path)
    first = str(err.value).splitlines()[0]
    assert first.startswith(f"{path}:{line + offset}: ") and message in first, first


def test_a_registry_without_other_is_refused(tmp_path):
    path, _ = _edited(tmp_path, "  - code: other\n", "  - code: misc\n")
    industries_line = PACKAGED.splitlines().index("industries:") + 2  # the list's first item
    with pytest.raises(
        DataFileError,
        match=rf"^{re.escape(str(path))}:{industries_line}: "
        r"industries: the taxonomy needs an industry 'other'",
    ):
        taxonomy.load(path)


def test_a_missing_field_names_the_entry(tmp_path):
    path, line = _edited(tmp_path, "    name_en: Pizza\n", "")
    with pytest.raises(
        DataFileError,
        match=rf"^{re.escape(str(path))}:{line - 2}: "
        r"industry 'pizza': missing name_en",
    ):
        taxonomy.load(path)


@pytest.mark.parametrize(
    ("old", "new", "what"),
    [
        ("생닭 10호*1.5, 양념치킨 소스*2", "생닭 10호*1.5, 없는상품*2", "menu item"),
        ("staples: 생닭 10호*4, 튀김가루*2", "staples: 생닭 10호*4, 없는상품*2", "staples"),
    ],
)
def test_an_unknown_product_in_a_recipe_names_the_registry_line(tmp_path, old, new, what):
    path, line = _edited(tmp_path, old, new)
    reg = taxonomy.load(path)  # well-formed: products are only resolved against the catalog
    with pytest.raises(
        DataFileError,
        match=rf"^{re.escape(str(path))}:{line}: industry 'chicken' "
        rf"{what}: product reference '없는상품' matches no",
    ):
        sample_data._Model(reg)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("육류,돼지 목살 1kg,abc,5,\n", "unit_price must be a whole number"),
        (
            "육류,생닭 10호 (1kg),5200,20,\n",
            "duplicate product name '생닭 10호 (1kg)' (first at line 2)",
        ),
        ("육류,양고기 1kg,9000,2,spring\n", "season must be empty or one of summer, winter"),
        ("육류,양고기 1kg,9000\n", "expected 5 fields"),
    ],
)
def test_bad_catalog_rows_name_the_file_and_line(tmp_path, row, message):
    text = sample_data.CATALOG_PATH.read_text(encoding="utf-8") + row
    path = _write(tmp_path, text, "catalog.csv")
    line = text.count("\n")
    with pytest.raises(
        DataFileError, match=rf"^{re.escape(str(path))}:{line}: .*{re.escape(message)}"
    ):
        sample_data._parse_catalog(path)


def test_a_chained_spelling_variant_is_refused(tmp_path):
    text = offline.VARIANTS_PATH.read_text(encoding="utf-8") + "돈까쓰: 돈가스\n"
    path = _write(tmp_path, text, "lexicon_variants.yaml")
    line = text.count("\n")
    with pytest.raises(
        DataFileError, match=rf"^{re.escape(str(path))}:{line}: canonical form '돈가스'"
    ):
        offline._load_variants(path)
