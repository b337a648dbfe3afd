"""`recsys label eval` and the cascade's routing (issue 11 items 3 and 4).

The scores are checked against a hand count on a nine-row gold file whose answers are known: the
fake server's keyword rule (written next to each row below, and checked against the rule) and the
offline lexicon's label and margin. CLI cases run the real `recsys` against the fake
OpenAI-compatible server and the real MLflow sqlite store: in a subprocess where the exit code or
MLflow is checked, in this process (the same app, no cold start) where only the output is.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from recsys_assets.cli import _register_optional
from recsys_assets.datafiles import DataFileError
from recsys_assets.labeling import cascade
from recsys_assets.labeling import evaluate as ev_mod
from recsys_assets.labeling.offline import OfflineLabeler, OfflinePrediction
from tests.fake_openai_server import _BLOCK, FakeOpenAI, keyword_label
from tests.in_process import recsys_here
from tests.test_labeling_cli import fake_key

_register_optional()
REPO = Path(__file__).resolve().parents[1]

# name, menu, truth, what the fake model answers (its keyword rule), what the lexicon answers
GOLD9 = [
    ("홍콩반점", "짜장면|짬뽕|탕수육", "chinese", "chinese", "chinese"),
    ("교촌치킨", "허니콤보|레드콤보|웨지감자", "chicken", "chicken", "chicken"),
    ("엄마손", "", "korean", "other", "other"),  # a name alone: both say other
    ("스타벅스", "아이스 아메리카노|카페라떼", "cafe_dessert", "cafe_dessert", "cafe_dessert"),
    ("청춘 PC방", "라면|음료", "other", "bunsik", "bunsik"),
    ("도미노피자", "포테이토 피자|슈퍼디럭스", "pizza", "pizza", "pizza"),
    ("맘스터치", "싸이버거|감자튀김", "burger", "bunsik", "burger"),  # the fake reads 튀김
    ("행복식당", "", "other", "other", "other"),
    # the lexicon is unsure (margin < 0.1) and right; the fake reads 치킨 and is wrong
    (
        "파파존스",
        "존스 페이버릿|슈퍼 파파스|스파이시 치킨랜치|치즈스틱",
        "pizza",
        "chicken",
        "pizza",
    ),
]
# Hand count. LLM: right on rows 1, 2, 4, 6, 8 -> 5/9. Offline: wrong on rows 3 and 5 -> 7/9.
# Cascade (margin 0.35): rows 3, 5, 8 (margin 0, agree) and 9 (margin 0.086, disagrees) are sent;
# the packaged default rule keeps the lexicon on row 9 -> the offline labels, 7/9.
# Wilson 95%: p = k/n, d = 1 + z^2/n, centre = (p + z^2/2n)/d, half = z sqrt(p(1-p)/n + z^2/4n^2)/d
# with z = 1.96: 5/9 -> 0.2667-0.8112, 7/9 -> 0.4526-0.9368, 6/9 -> 0.3542-0.8794.


def write_gold(path: Path, rows=GOLD9) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "menu", "description", "industry"])
        for name, menu, truth, *_ in rows:
            w.writerow([name, menu, "", truth])
    return path


def test_the_hand_count_fixture_is_what_the_labelers_answer():
    offline = OfflineLabeler()
    for name, menu, _truth, fake, lexicon in GOLD9:
        assert keyword_label(name, menu) == fake, name
        assert offline.predict(name, menu).industry == lexicon, name
    margins = [offline.predict(n, m).margin for n, m, *_ in GOLD9]
    assert [i for i, m in enumerate(margins) if m < 0.35] == [2, 4, 7, 8]
    assert 0 < margins[8] < 0.1


# -- scores -----------------------------------------------------------------------------------------
def test_wilson_interval():
    assert ev_mod.wilson(5, 9) == pytest.approx((0.2667, 0.8112), abs=5e-5)
    assert ev_mod.wilson(7, 9) == pytest.approx((0.4526, 0.9368), abs=5e-5)
    lo, hi = ev_mod.wilson(0, 10)
    assert lo == pytest.approx(0.0) and 0 < hi < 0.35  # never a negative bound
    lo, hi = ev_mod.wilson(10, 10)
    assert hi == pytest.approx(1.0) and 0.65 < lo < 1  # nor a zero-width interval at 10/10


def test_gold_file_is_validated_with_the_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,menu,industry\n가게,짜장면,chinese\n가게2,피자,fusion\n", encoding="utf-8")
    with pytest.raises(
        ev_mod.EvalError,
        match=r"1 row\(s\) with an industry outside the taxonomy "
        r"\(line 3: 'fusion'\)",
    ):
        ev_mod.load_gold(bad)
    no_col = tmp_path / "nocol.csv"
    no_col.write_text("name,menu\n가게,짜장면\n", encoding="utf-8")
    with pytest.raises(ev_mod.EvalError, match=r"nocol.csv:1: missing column\(s\) industry"):
        ev_mod.load_gold(no_col)
    empty = tmp_path / "empty.csv"
    empty.write_text("name,menu,industry\n", encoding="utf-8")
    with pytest.raises(ev_mod.EvalError, match="header but no rows"):
        ev_mod.load_gold(empty)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name,menu,industry\ncaf\xe9,x,other\n".encode("latin-1"))
    with pytest.raises(ev_mod.EvalError, match="not UTF-8"):
        ev_mod.load_gold(latin)


def test_the_default_gold_file_is_packaged():
    gold = ev_mod.load_gold()
    assert gold.path == ev_mod.DEFAULT_GOLD and gold.path.parent.name == "data"
    assert len(gold.truth) == len(gold.frame) >= 120 and gold.split is not None
    assert gold.frame["restaurant_id"].is_unique


# -- routing ----------------------------------------------------------------------------------------
RULE = cascade.Rule(trust_below=0.1, min_confidence=0.8, entry="m")


@pytest.mark.parametrize(
    ("offline", "margin", "llm", "conf", "expected"),
    [
        ("pizza", 0.5, "pizza", 0.1, True),  # agreement: the same label
        ("pizza", 0.05, "chicken", 0.9, True),  # unsure lexicon, confident model
        ("pizza", 0.1, "chicken", 0.99, False),  # the lexicon is sure enough (margin not < 0.1)
        ("pizza", 0.05, "chicken", 0.7, False),  # the model is unsure
        ("pizza", 0.0, None, None, False),  # no valid answer
    ],
)
def test_use_llm(offline, margin, llm, conf, expected):
    assert cascade.use_llm(offline, margin, llm, conf, RULE) is expected


def table(**overrides) -> cascade.RoutingTable:
    base = cascade.load_routing()
    fields = {
        "path": base.path,
        "margin_bands": (0.0, 0.02, 0.05, 0.1, 0.2, 0.35),
        "confidence_bands": (0.0, 0.5, 0.8, 0.9, 0.95),
        "min_gain": 1,
        "default": cascade.Rule(),
        "models": {},
        **overrides,
    }
    return cascade.RoutingTable(**fields)


def cases(margin: float, won: int, lost: int, conf: float = 0.9) -> list[cascade.Case]:
    """`won` disagreements the model got right (lexicon wrong), `lost` the reverse."""
    return [cascade.Case(margin, False, True, False, conf)] * won + [
        cascade.Case(margin, True, False, False, conf)
    ] * lost


def test_fit_trusts_the_model_only_in_bands_where_it_beats_the_lexicon():
    data = cases(0.01, won=3, lost=0) + cases(0.07, won=0, lost=2)
    data += [cascade.Case(0.5, True, True, True, 0.9)] * 10  # agreements change nothing
    fit = cascade.fit(data, table(), "m")
    assert (fit.rule.trust_below, fit.rule.min_confidence) == (0.02, 0.9)  # ties: lowest, highest
    assert (fit.gain, fit.overrides) == (3, 3)


def test_fit_never_overrides_when_the_model_is_not_better():
    fit = cascade.fit(cases(0.01, won=1, lost=1) + cases(0.15, won=0, lost=4), table(), "m")
    assert fit.rule.trust_below == 0.0 and fit.gain == 0
    assert "kept wherever the model disagrees" in fit.rule.describe()


def test_fit_refuses_a_band_that_loses_even_when_the_total_gains():
    # [0.02, 0.05) loses a row, so nothing above 0.02 is trusted although up to 0.1 gains 3+5-1
    data = cases(0.01, won=3, lost=0) + cases(0.03, won=0, lost=1) + cases(0.07, won=5, lost=0)
    fit = cascade.fit(data, table(), "m")
    assert fit.rule.trust_below == 0.02 and fit.gain == 3


def test_fit_needs_min_gain_and_a_confident_model():
    assert cascade.fit(cases(0.01, won=2, lost=0), table(min_gain=3), "m").rule.trust_below == 0
    fit = cascade.fit(
        cases(0.01, won=2, lost=0, conf=0.6) + cases(0.01, won=0, lost=2, conf=0.4), table(), "m"
    )
    assert (fit.rule.trust_below, fit.rule.min_confidence, fit.gain) == (0.02, 0.5, 2)


def test_cross_validation_scores_rules_on_rows_they_were_not_fitted_on(tmp_path):
    """One lucky row: the fitted rule gains it, but a fold that holds it out cannot learn it."""
    gold = ev_mod.load_gold(write_gold(tmp_path / "g.csv"))
    offline = [OfflinePrediction(lex, 0.9, 0.9, None, ()) for *_, lex in GOLD9]
    offline[2] = OfflinePrediction("other", 0.1, 0.0, None, ())  # row 3: lexicon wrong, unsure
    answers = {2: ev_mod.Answer("ok", "korean", 0.9, 1, 1, 0.0)}  # the model is right there
    ev = ev_mod.Evaluation(
        gold,
        "llm",
        [lex for *_, lex in GOLD9],
        [False] * 9,
        ["llm"] * 9,
        ["ok"] * 9,
        offline,
        list(range(9)),
        answers,
        report=None,
        model="m",
    )
    cal = ev_mod.calibrate(ev, table(), folds=3, repeats=4)
    assert cal.fit.rule.trust_below == 0.02 and cal.fitted_correct == cal.offline_correct + 1
    assert cal.heldout_correct == cal.offline_correct  # held out, the row is never learned
    assert sum(cal.fold_rules.values()) == 12 and cal.fold_rules["0/1"] == 4


def test_routing_file_errors_name_the_line(tmp_path):
    text = cascade.ROUTING_PATH.read_text(encoding="utf-8")
    assert text.rstrip().splitlines()[-1].startswith("      ")  # `models` is the last mapping
    bad = tmp_path / "r.yaml"
    bad.write_text(
        text + "  other-model: {trust_below: 2, min_confidence: 0.5}\n", encoding="utf-8"
    )
    line = len(text.splitlines()) + 1
    with pytest.raises(
        DataFileError,
        match=rf"r.yaml:{line}: other-model: trust_below must be a "
        r"number in 0..1, got 2",
    ):
        cascade.load_routing(bad)
    bands = tmp_path / "b.yaml"
    bands.write_text(text.replace("[0.0, 0.02, 0.05", "[0.0, 0.05, 0.02"), encoding="utf-8")
    with pytest.raises(DataFileError, match="offline_margin must start at 0 and increase"):
        cascade.load_routing(bands)
    with pytest.raises(DataFileError, match="routing file not found"):
        cascade.load_routing(tmp_path / "missing.yaml")


def test_packaged_rules_never_scored_below_the_lexicon():
    """Each measured model's rule, on the rows it was fitted on, is at least the offline labeler;
    a model nobody measured is never trusted over the lexicon."""
    routing = cascade.load_routing()
    assert routing.default.trust_below == 0
    assert {"qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"} <= set(routing.models)
    for name, rule in routing.models.items():
        assert routing.rule_for(name.upper()) is rule  # names match case-insensitively
        fitted = rule.fitted
        assert fitted["fitted_correct"] >= fitted["offline_correct"], name
        assert fitted["gold"] == ev_mod.DEFAULT_GOLD.name
    assert routing.rule_for("some-model-nobody-measured") is routing.default


# -- the cascade in label_frame ---------------------------------------------------------------------
def routing_file(path: Path, trust_below: float, min_confidence: float) -> Path:
    text = cascade.ROUTING_PATH.read_text(encoding="utf-8")
    head = text.split("\ndefault:")[0]
    path.write_text(
        head + f"\ndefault:\n  trust_below: {trust_below}\n  min_confidence: "
        f"{min_confidence}\nmodels: {{}}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("trust_below", "min_conf", "row9", "source9"),
    [
        (0.0, 1.0, "pizza", "cascade_offline"),  # never trust: the lexicon's label
        (0.1, 0.95, "pizza", "cascade_offline"),  # the fake's 0.9 is below the bar
        (0.1, 0.8, "chicken", "cascade_llm"),  # trusted below margin 0.1 at 0.9
    ],
)
def test_cascade_routes_by_the_routing_file(
    recsys_home, monkeypatch, tmp_path, trust_below, min_conf, row9, source9
):
    from recsys_assets.config import load_settings
    from recsys_assets.labeling.llm import LLMOptions
    from recsys_assets.labeling.service import label_frame

    monkeypatch.setenv(
        "RECSYS_CASCADE_ROUTING", str(routing_file(tmp_path / "r.yaml", trust_below, min_conf))
    )
    gold = ev_mod.load_gold(write_gold(tmp_path / "g.csv"))
    with FakeOpenAI() as srv:
        out, rep = label_frame(
            gold.frame,
            labeler="cascade",
            settings=load_settings(),
            llm_options=LLMOptions(base_url=srv.base_url, api_key=fake_key()),
        )
        assert srv.requests == 4
    assert out["industry"].iloc[8] == row9 and out["source"].iloc[8] == source9
    assert out["source"].iloc[[2, 4, 7]].tolist() == ["cascade_llm"] * 3  # agreements
    assert rep.cascade_kept_offline == (source9 == "cascade_offline")
    assert out["industry"].iloc[:8].tolist() == [lex for *_, lex in GOLD9[:8]]


@pytest.mark.parametrize(
    ("script", "status"),
    [
        (["out_of_taxonomy", "out_of_taxonomy"], "invalid"),  # answered outside the taxonomy twice
        (["server_error"], "unanswered"),  # no answer (one attempt allowed): retried by a rerun
    ],
)
def test_cascade_keeps_the_lexicon_label_when_the_model_gives_no_valid_answer(
    recsys_home, tmp_path, script, status
):
    from recsys_assets.config import load_settings
    from recsys_assets.labeling.engine import EngineConfig
    from recsys_assets.labeling.llm import LLMOptions
    from recsys_assets.labeling.service import label_frame

    gold = ev_mod.load_gold(write_gold(tmp_path / "g.csv", GOLD9[8:]))  # only 파파존스
    with FakeOpenAI(script=script) as srv:
        out, rep = label_frame(
            gold.frame,
            labeler="cascade",
            settings=load_settings(),
            llm_options=LLMOptions(base_url=srv.base_url, api_key=fake_key()),
            engine_config=EngineConfig(max_concurrency=1, max_attempts=1),
        )
    row = out.iloc[0]
    assert (row["industry"], row["source"], row["label_status"], bool(row["flagged"])) == (
        "pizza",
        "cascade_offline",
        status,
        True,
    )
    assert rep.cascade_kept_offline == 1


# -- the CLI ----------------------------------------------------------------------------------------
@pytest.fixture
def server():
    with FakeOpenAI() as srv:
        srv.keep_bodies = False
        yield srv


@pytest.fixture
def env(recsys_home, server):
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OPENAI_API_KEY": fake_key(),
        "OPENAI_BASE_URL": server.base_url,
        "RECSYS_LLM_MAX_CONCURRENCY": "2",
        "RECSYS_LLM_BACKOFF_BASE": "0.005",
        "RECSYS_LLM_BACKOFF_MAX": "0.01",
    }


def recsys(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsys_assets.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def mlflow_runs(home: Path) -> pd.DataFrame:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    return mlflow.search_runs(experiment_names=[ev_mod.EXPERIMENT], order_by=["start_time ASC"])


@pytest.mark.heavy
def test_eval_prints_hand_checked_scores_logs_mlflow_and_reevaluates_for_free(
    env, server, recsys_home, tmp_path
):
    gold = write_gold(tmp_path / "gold.csv")
    first = recsys(["label", "eval", str(gold), "--labeler", "llm", "--no-progress"], env)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "accuracy 0.5556 (5/9), 95% CI 0.2667-0.8112 (Wilson)" in out
    assert "offline lexicon on the same rows: 0.7778 (7/9)" in out
    assert "flagged 0.0% (0); sources llm 9" in out
    assert "LLM: 9 rows sent; this run 9 calls" in out and server.requests == 9
    lines = out.splitlines()
    table = {ln.split()[0]: ln.split()[1:] for ln in lines[lines.index("per industry:") + 2 :][:17]}
    # chicken: 1 gold row, predicted twice (rows 2 and 9): precision 0.5, recall 1, F1 2/3
    assert table["chicken"] == ["0.500", "1.000", "0.667", "1", "2"]
    # bunsik: no gold row, predicted twice: precision 0, recall undefined
    assert table["bunsik"] == ["0.000", "-", "-", "0", "2"]
    # other: gold rows 5 and 8, predicted on rows 3 and 8: precision 1/2, recall 1/2
    assert table["other"] == ["0.500", "0.500", "0.500", "2", "2"]
    confusions = lines[lines.index("confusions (gold -> predicted): 4 rows") + 1 :][:5]
    assert [ln.split() for ln in confusions] == [
        ["gold", "predicted", "rows"],
        ["burger", "bunsik", "1"],
        ["korean", "other", "1"],
        ["other", "bunsik", "1"],
        ["pizza", "chicken", "1"],
    ]

    runs = mlflow_runs(recsys_home)
    assert len(runs) == 1
    run = runs.iloc[0]
    fp = out.split("prompt fingerprint ")[1].split(",")[0].split()[0]
    assert (run["params.labeler"], run["params.model"], run["params.prompt_fingerprint"]) == (
        "llm",
        "gpt-4o-mini",
        fp,
    )
    assert run["metrics.accuracy"] == pytest.approx(5 / 9)
    assert run["metrics.accuracy_ci95_low"] == pytest.approx(0.2667, abs=5e-5)
    assert run["metrics.llm_calls"] == 9 and run["metrics.flagged_share"] == 0
    import mlflow

    local = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run["run_id"], artifact_path="evaluation", dst_path=str(tmp_path / "art")
        )
    )
    assert (local / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    per_ind = pd.read_csv(local / "per_industry.csv").set_index("industry")
    assert per_ind.loc["chicken", "precision"] == 0.5 and per_ind.loc["chicken", "support"] == 1
    assert pd.read_csv(local / "confusion.csv").set_index("gold").loc["pizza", "chicken"] == 1

    again = recsys(["label", "eval", str(gold), "--labeler", "llm", "--no-progress"], env)
    assert again.returncode == 0, again.stderr
    assert server.requests == 9  # every answer came from the ledger
    assert "this run 0 calls, 0+0 tokens, $0.0000" in again.stdout
    assert "accuracy 0.5556 (5/9)" in again.stdout
    runs = mlflow_runs(recsys_home)
    assert len(runs) == 2 and runs.iloc[1]["metrics.llm_calls"] == 0
    assert runs.iloc[1]["metrics.cost_per_1k_usd"] == pytest.approx(
        runs.iloc[0]["metrics.cost_per_1k_usd"]
    )


def test_eval_cascade_routing_and_calibration(env, server, recsys_home, tmp_path, monkeypatch):
    gold = write_gold(tmp_path / "gold.csv")
    res = recsys_here(
        ["label", "eval", str(gold), "--labeler", "cascade", "--no-progress", "--no-mlflow"],
        env,
        monkeypatch,
    )
    assert res.returncode == 0, res.stderr
    assert "accuracy 0.7778 (7/9), 95% CI 0.4526-0.9368 (Wilson)" in res.stdout
    assert "the lexicon's label kept on 1 of the rows sent" in res.stdout
    assert "LLM: 4 rows sent; this run 4 calls" in res.stdout and server.requests == 4

    trusting = routing_file(tmp_path / "trust.yaml", 0.1, 0.8)
    res = recsys_here(
        ["label", "eval", str(gold), "--labeler", "cascade", "--no-progress", "--no-mlflow"],
        {**env, "RECSYS_CASCADE_ROUTING": str(trusting)},
        monkeypatch,
    )
    assert "accuracy 0.6667 (6/9), 95% CI 0.3542-0.8794" in res.stdout  # row 9 now wrong
    assert server.requests == 4  # the routing is not part of the fingerprint: no new call

    out = tmp_path / "fitted.yaml"
    res = recsys_here(
        [
            "label",
            "eval",
            str(gold),
            "--labeler",
            "cascade",
            "--no-progress",
            "--no-mlflow",
            "--calibrate",
            "--routing-out",
            str(out),
        ],
        env,
        monkeypatch,
    )
    assert res.returncode == 0, res.stderr
    assert (
        "calibration on 4 answered rows of 9: gpt-4o-mini: the offline label is kept" in res.stdout
    )
    assert "held-out (5-fold cross-validation x 5): cascade 0.7778 vs offline 0.7778" in res.stdout
    rule = cascade.load_routing(out).rule_for("gpt-4o-mini")
    assert rule.trust_below == 0 and rule.fitted["fitted_correct"] == 7
    assert out.read_text(encoding="utf-8").startswith("# Cascade routing")  # the doc is kept
    assert server.requests == 4


def test_label_and_label_eval_are_both_commands(env, server, recsys_home, tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame(
        {"restaurant_id": ["a", "b"], "name": ["홍콩반점", "엄마손"], "menu": ["짜장면|짬뽕", ""]}
    ).to_csv(src, index=False)
    labeled = recsys(
        [
            "label",
            str(src),
            "-o",
            str(tmp_path / "out.csv"),
            "--labeler",
            "offline",
            "--no-progress",
        ],
        env,
    )
    assert labeled.returncode == 0, labeled.stderr
    assert pd.read_csv(tmp_path / "out.csv")["industry"].tolist() == ["chinese", "other"]
    usage = recsys(
        ["label", str(src)], env
    )  # still `label INPUT`: it asks for -o, not a subcommand
    assert usage.returncode == 2 and "--output/-o" in usage.stderr.strip().splitlines()[-1]

    res = recsys(["label", "eval", "--labeler", "offline", "--no-mlflow"], env)
    assert res.returncode == 0, res.stderr
    gold = ev_mod.load_gold()
    preds = OfflineLabeler().predict_many(
        zip(gold.frame["name"], gold.frame["menu"], gold.frame["description"], strict=True)
    )
    ok = sum(p.industry == t for p, t in zip(preds, gold.truth, strict=True))
    assert f"accuracy {ok / len(preds):.4f} ({ok}/{len(preds)})" in res.stdout
    assert str(ev_mod.DEFAULT_GOLD) in res.stdout.splitlines()[0]
    assert server.requests == 0


def test_eval_refuses_bad_input_before_any_call(env, server, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,menu,industry\n가게,짜장면,chinese\n가게2,피자,fusion\n", encoding="utf-8")
    res = recsys(["label", "eval", str(bad), "--labeler", "llm"], env)
    assert res.returncode == 2
    assert (
        res.stderr.strip().splitlines()[-1].startswith(f"error: {bad}: 1 row(s) with an industry")
    )
    res = recsys(["label", "eval", "--labeler", "offline", "--calibrate"], env)
    assert res.returncode == 2 and "--calibrate fits where the cascade trusts a model" in res.stderr
    broken = tmp_path / "r.yaml"
    broken.write_text("bands: 3\n", encoding="utf-8")
    res = recsys(
        ["label", "eval", "--labeler", "cascade"], {**env, "RECSYS_CASCADE_ROUTING": str(broken)}
    )
    assert res.returncode == 2 and f"error: {broken}:1: bands" in res.stderr
    assert server.requests == 0


def test_eval_with_unanswered_rows_exits_3_and_says_so_last(env, server, tmp_path):
    gold = write_gold(tmp_path / "gold.csv", GOLD9[:3])
    server.configure(script=["server_error"])  # the first call fails, with no retry left
    res = recsys(
        ["label", "eval", str(gold), "--labeler", "llm", "--no-progress", "--no-mlflow"],
        {**env, "RECSYS_LLM_MAX_CONCURRENCY": "1", "RECSYS_LLM_MAX_ATTEMPTS": "1"},
    )
    assert res.returncode == 3, res.stderr
    assert "unanswered 1" in res.stdout and "accuracy 0.3333 (1/3)" in res.stdout  # row 1 lost
    assert (
        res.stderr.strip()
        .splitlines()[-1]
        .startswith("error: 1 of 3 gold row(s) got no answer from the model")
    )


def test_replay_of_stored_answers_scores_like_the_live_run(tmp_path):
    """The benchmark scores recorded real-model answers with evaluate.replay: on the fake model's
    answers it gives the hand counts the live `recsys label eval` runs above print."""
    gold = ev_mod.load_gold(write_gold(tmp_path / "g.csv"))
    answers = {
        i: ev_mod.Answer("ok", fake, 0.9, 1, 1, 0.0) for i, (*_, fake, _) in enumerate(GOLD9)
    }
    assert ev_mod.replay(gold, answers, labeler="llm", model="m").correct == 5
    routed = ev_mod.replay(gold, answers, labeler="cascade", model="m", rule=cascade.Rule())
    assert routed.correct == 7 and routed.asked == [2, 4, 7, 8]
    assert routed.report.cascade_kept_offline == 1 and routed.source[8] == "cascade_offline"
    trusting = ev_mod.replay(
        gold, answers, labeler="cascade", model="m", rule=cascade.Rule(0.1, 0.8)
    )
    assert trusting.correct == 6 and trusting.predicted[8] == "chicken"
    answers[8] = ev_mod.Answer("failed", None, 0.0, 0, 0, 0.0)  # no answer: the lexicon's label
    failed = ev_mod.replay(gold, answers, labeler="cascade", model="m", rule=cascade.Rule(0.1, 0.8))
    assert failed.predicted[8] == "pizza" and failed.status[8] == "unanswered"
    del answers[8]
    with pytest.raises(ev_mod.EvalError, match="no stored answer for 1 row"):
        ev_mod.replay(gold, answers, labeler="cascade", model="m")


class _StrongModel(FakeOpenAI):
    """A model that knows the gold answer for every row: it stands in for a strong real model (none
    is reachable on this machine) to show that the cascade gains where a model is measured better."""

    def _labels(self, body):
        user = next(m["content"] for m in body["messages"] if m.get("role") == "user")
        items = [it for block in _BLOCK.findall(user) for it in json.loads(block)]
        truth = {name: label for name, _menu, label, *_ in GOLD9}
        return [(str(it["id"]), truth.get(it["name"], "other")) for it in items]


def test_a_model_measured_better_than_the_lexicon_raises_the_cascade_above_offline(
    recsys_home, tmp_path, monkeypatch
):
    """Issue 11 item 3, "and more with a strong one": calibration trusts a better model in the
    bands where it wins, and the cascade then beats the offline labeler on the gold rows."""
    gold = write_gold(tmp_path / "gold.csv")
    with _StrongModel() as strong:
        strong.keep_bodies = False
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "OPENAI_API_KEY": fake_key(),
            "OPENAI_BASE_URL": strong.base_url,
            "RECSYS_LLM_MAX_CONCURRENCY": "2",
        }
        base = ["label", "eval", str(gold), "--labeler", "cascade", "--no-progress", "--no-mlflow"]
        res = recsys_here(base, env, monkeypatch)
        assert res.returncode == 0, res.stderr
        # the packaged default never trusts an unmeasured model: the offline labels, 7/9
        assert "accuracy 0.7778 (7/9)" in res.stdout
        sent = strong.requests
        assert sent == 4  # rows 3, 5, 8 and 9 are below the cascade margin

        out = tmp_path / "fitted.yaml"
        res = recsys_here([*base, "--calibrate", "--routing-out", str(out)], env, monkeypatch)
        assert res.returncode == 0, res.stderr
        rule = cascade.load_routing(out).rule_for("gpt-4o-mini")
        assert rule.trust_below > 0  # trusted in the low-margin bands, where it was right
        assert rule.fitted["fitted_correct"] == 9 and rule.fitted["offline_correct"] == 7

        res = recsys_here(base, {**env, "RECSYS_CASCADE_ROUTING": str(out)}, monkeypatch)
        assert res.returncode == 0, res.stderr
        assert "accuracy 1.0000 (9/9)" in res.stdout  # above the offline labeler's 7/9
        assert strong.requests == sent  # answers came from the ledger: calibrating costs nothing
