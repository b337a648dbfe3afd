"""Any OpenAI-compatible server (issue 11 item 2), against the fake server's faults real servers
have but cannot be made to show on demand: a refused request shape (llama-cpp-python's HTTP 500
validation error for json_schema), a forced tool call answered without `tool_calls` (llama.cpp's
llama-server), a full context, a percentage confidence, a truncated answer, a model name the
server does not serve. Real ChatOpenAI over HTTP, real SQLite ledger; the CLI in a subprocess where
the exit code matters. Calls are counted on the server: a refusal is exactly one call.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from recsys_assets.config import ConfigError, load_settings
from recsys_assets.labeling.engine import EngineConfig
from recsys_assets.labeling.llm import (
    LabelAnswer,
    LLMOptions,
    _chat_openai,
    _model_is_served,
    default_max_tokens,
)
from recsys_assets.labeling.service import LabelingAborted, label_frame
from tests.fake_openai_server import FakeOpenAI, keyword_label, request_method
from tests.test_labeling_cli import fake_key

REPO = Path(__file__).resolve().parents[1]
# One line each: menus the fake's keyword rule labels, and the offline labeler is sure of or not.
SURE = ["짜장면, 짬뽕, 탕수육", "삼겹살, 목살", "연어초밥, 우동", "콤비네이션 피자"]
UNSURE = ["오늘의 메뉴", "세트 A, 세트 B"]
REFUSED_JSON_SCHEMA = "response_format.type: Input should be 'text' or 'json_object'"


def make_df(menus: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "restaurant_id": [f"R{i:03d}" for i in range(len(menus))],
            "name": [f"가게{i}" for i in range(len(menus))],
            "menu": menus,
        }
    )


@pytest.fixture
def server():
    with FakeOpenAI() as srv:
        yield srv


@pytest.fixture
def run(recsys_home, server):
    key = fake_key()

    def label(df, *, structured="auto", concurrency=4, items_per_call=1, labeler="llm", **opts):
        cfg = EngineConfig(
            max_concurrency=concurrency,
            items_per_call=items_per_call,
            backoff_base_s=0.001,
            backoff_max_s=0.01,
        )
        options = LLMOptions(
            base_url=server.base_url,
            api_key=key,
            timeout_s=5,
            structured=structured,
            items_per_call=items_per_call,
            **opts,
        )
        return label_frame(
            df, labeler=labeler, settings=load_settings(), llm_options=options, engine_config=cfg
        )

    return label


def expected_labels(df: pd.DataFrame) -> list[str]:
    return [keyword_label(n, m) for n, m in zip(df["name"], df["menu"], strict=True)]


# -- a: the method is negotiated once, validated locally, and reported ---------------------------------
def test_auto_keeps_json_schema_when_the_server_accepts_it_and_sends_max_tokens(run, server):
    df = make_df(SURE)
    out, rep = run(df)
    assert [request_method(b) for b in server.bodies] == ["json_schema"] * 4
    assert out["industry"].tolist() == expected_labels(df)
    assert rep.structured_output == "json_schema (auto)"
    # A local server gets the legacy max_tokens (llama-cpp-python ignores max_completion_tokens).
    assert {b.get("max_tokens") for b in server.bodies} == {default_max_tokens(1)}
    assert not any("max_completion_tokens" in b for b in server.bodies)


def test_auto_moves_to_tool_calls_when_json_schema_is_refused_like_llama_cpp_python(run, server):
    server.configure(refuse={"json_schema": 500})
    df = make_df(SURE * 2)
    out, rep = run(df)
    methods = [request_method(b) for b in server.bodies]
    assert methods == ["json_schema"] + ["tool"] * 8  # one refused probe, never sent again
    assert out["industry"].tolist() == expected_labels(df) and not out["flagged"].any()
    assert (
        rep.structured_output
        == f"tool (auto; refused: json_schema: HTTP 500 {REFUSED_JSON_SCHEMA})"
    )
    assert rep.llm_calls == server.requests == 9
    tool_body = server.bodies[1]
    assert tool_body["tool_choice"]["function"]["name"] == tool_body["tools"][0]["function"]["name"]


def test_auto_moves_to_json_object_when_tool_calls_do_not_come_back(run, server):
    """llama-server answers a forced tool call in the content: not honoured, json_object next."""
    server.configure(refuse={"json_schema": 500}, tool_calls=False)
    df = make_df(SURE + UNSURE)
    out, rep = run(df, items_per_call=2)
    assert [request_method(b) for b in server.bodies] == ["json_schema", "tool"] + [
        "json_object"
    ] * 3
    assert out["industry"].tolist() == expected_labels(df) and not out["flagged"].any()
    assert rep.structured_output.startswith("json_object (auto; refused: json_schema: HTTP 500 ")
    assert rep.structured_output.endswith("; tool: answered without tool_calls)")
    # json_object carries no schema: the system prompt spells it out.
    system = server.bodies[-1]["messages"][0]["content"]
    assert "valid against this JSON schema" in system and '"items"' in system
    assert rep.llm_calls == server.requests == 5


# -- b: a refused request shape is fatal on the first call, never retried ---------------------------------
@pytest.mark.parametrize(
    ("structured", "fake", "said"),
    [
        (
            "json_schema",
            {"refuse": {"json_schema": 500}},
            f"RECSYS_LLM_STRUCTURED=json_schema (response_format json_schema): HTTP 500 {REFUSED_JSON_SCHEMA}",
        ),
        (
            "tool",
            {"tool_calls": False},
            "RECSYS_LLM_STRUCTURED=tool (a forced tool call (tools + tool_choice)): answered without tool_calls",
        ),
        (
            "json_object",
            {"refuse": {"json_object": 400}},
            (
                "RECSYS_LLM_STRUCTURED=json_object (response_format json_object): HTTP 400 Invalid "
                "parameter: 'json_object' is not supported with this model."
            ),
        ),
    ],
    ids=["json_schema-500", "tool-no-tool-calls", "json_object-400"],
)
def test_a_set_method_the_server_refuses_stops_the_run_after_one_call(
    run, server, structured, fake, said
):
    server.configure(**fake)
    with pytest.raises(LabelingAborted) as info:
        run(make_df(SURE * 3), structured=structured, concurrency=4)
    assert server.requests == 1  # not max_concurrency calls, and no retry
    err = info.value
    assert err.reason == "structured_output_refused" and "\n" not in str(err)
    assert str(err).startswith(f"the server refused {said}. Set RECSYS_LLM_STRUCTURED=auto")
    assert err.report.llm_calls == 1 and err.report.remaining == 12


def test_auto_with_every_method_refused_stops_after_one_call_per_method(run, server):
    server.configure(refuse={"json_schema": 500, "tool": 422, "json_object": 400})
    with pytest.raises(LabelingAborted) as info:
        run(make_df(SURE), concurrency=4)
    assert [request_method(b) for b in server.bodies] == ["json_schema", "tool", "json_object"]
    msg = str(info.value)
    assert msg.startswith(
        "the server refused every structured-output method "
        "(RECSYS_LLM_STRUCTURED=auto): json_schema (response_format json_schema): "
        f"HTTP 500 {REFUSED_JSON_SCHEMA}; tool ("
    )
    assert "json_object (response_format json_object): HTTP 400" in msg
    assert info.value.report.llm_calls == 3


def test_a_rejected_request_after_the_first_answer_fails_that_row_only_without_retry(run, server):
    server.configure(script=["ok", "bad_request"])
    out, rep = run(make_df(SURE), concurrency=1)
    assert server.requests == 4  # the rejected row was sent once
    assert out["label_status"].tolist() == ["ok", "unanswered", "ok", "ok"]
    assert rep.failures_by_reason == {"http_400": 1, "exhausted:http_400": 1}


@pytest.mark.parametrize("fault", ["context_exceeded", "exceed_context_size"])
def test_a_full_context_stops_with_what_to_change(run, server, fault):
    server.configure(script=["ok", fault])
    with pytest.raises(LabelingAborted) as info:
        run(make_df(SURE * 2), concurrency=1)
    assert server.requests == 2  # never retried, and not taken for a refused method
    msg = str(info.value)
    assert info.value.reason == "context_exceeded" and "\n" not in msg
    assert "lower RECSYS_LLM_MAX_CONCURRENCY to at most the slots, or raise -c" in msg
    assert ("Context size has been exceeded." in msg) == (fault == "context_exceeded")


def test_a_full_context_on_the_first_call_does_not_move_auto_to_another_method(run, server):
    server.configure(script=["exceed_context_size"])
    with pytest.raises(LabelingAborted) as info:
        run(make_df(SURE))
    assert server.requests == 1 and info.value.reason == "context_exceeded"


# -- d: the label is kept when only the confidence is off; a re-ask is never the same request -----------
def test_out_of_range_confidence_is_normalised_and_the_label_kept(run, server):
    server.configure(
        script=["percent_confidence", "negative_confidence", "word_confidence", "word_confidence"]
    )
    df = make_df(SURE[:3])
    out, _ = run(df, concurrency=1)
    assert server.requests == 4  # only the unusable "very sure" is re-asked
    assert out["confidence"].tolist()[:2] == [0.85, 0.0]
    assert out["industry"].tolist()[:2] == expected_labels(df)[:2]
    assert out["label_status"].tolist() == ["ok", "ok", "invalid"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (15, 0.15),
        (85, 0.85),
        ("85%", 0.85),
        (100, 1.0),
        (250, 1.0),
        (-1, 0.0),
        (math.nan, 0.0),
        (0.7, 0.7),
        ("0.4", 0.4),
    ],
)
def test_confidence_normalisation(value, expected):
    answer = LabelAnswer.model_validate({"industry": "korean", "confidence": value, "reason": "x"})
    assert answer.confidence == pytest.approx(expected)


@pytest.mark.parametrize("structured", ["json_schema", "tool", "json_object"])
@pytest.mark.parametrize("fault", ["wrong_shape", "truncated"])
def test_a_reask_adds_the_answer_and_what_was_wrong(run, server, structured, fault):
    server.configure(script=[fault, "ok"])
    out, _ = run(make_df(SURE[:1]), structured=structured)
    first, second = server.bodies
    assert second != first
    assert second["messages"][:2] == first["messages"]  # same prompt, then the exchange
    answer, fix = second["messages"][2:]
    assert answer["role"] == "assistant" and "tool_calls" not in answer
    assert answer["content"].startswith('{"')  # the model's own answer (the tool's arguments)
    assert fix["role"] == "user" and fix["content"].startswith("Your answer did not validate: r1: ")
    assert ("cut off at the token limit" in fix["content"]) == (fault == "truncated")
    assert request_method(second) == structured and out["label_status"].tolist() == ["ok"]


# -- c: max_tokens and a timeout that grows with the items per call ----------------------------------
def test_max_tokens_and_timeout_scale_with_items_per_call():
    opts = LLMOptions(timeout_s=30, timeout_per_item_s=10, items_per_call=5)
    assert opts.effective_timeout_s() == 70 and opts.effective_max_tokens() == default_max_tokens(5)
    assert default_max_tokens(5) > default_max_tokens(1) >= 128
    assert LLMOptions(max_tokens=300).effective_max_tokens() == 300
    chat = _chat_openai(opts)  # OpenAI itself: max_completion_tokens, the one name o-models take
    assert chat.request_timeout == 70
    payload = chat._get_request_payload("hi")
    assert payload["max_completion_tokens"] == default_max_tokens(5) and "max_tokens" not in payload
    local = _chat_openai(LLMOptions(base_url="http://127.0.0.1:8080/v1", max_tokens=200))
    assert local._get_request_payload("hi")["extra_body"] == {"max_tokens": 200}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "RECSYS_LLM_STRUCTURED",
            "grammar",
            "RECSYS_LLM_STRUCTURED must be one of auto, json_schema, tool, json_object, got 'grammar'",
        ),
        (
            "RECSYS_LLM_MAX_TOKENS",
            "8",
            "RECSYS_LLM_MAX_TOKENS must be >= 16 (an answer needs room), got 8",
        ),
        ("RECSYS_LLM_TIMEOUT", "0", "RECSYS_LLM_TIMEOUT must be a finite number > 0, got 0.0"),
    ],
)
def test_malformed_server_settings_name_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == message


def test_server_settings_reach_the_options(monkeypatch):
    for name, value in {
        "RECSYS_LLM_STRUCTURED": "Tool",
        "RECSYS_LLM_MAX_TOKENS": "300",
        "RECSYS_LLM_TIMEOUT": "60",
        "RECSYS_LLM_TIMEOUT_PER_ITEM": "20",
        "RECSYS_LLM_ITEMS_PER_CALL": "3",
    }.items():
        monkeypatch.setenv(name, value)
    opts = LLMOptions.from_settings(load_settings().llm)
    assert (opts.structured, opts.max_tokens, opts.effective_timeout_s()) == ("tool", 300, 100.0)


# -- f: a model the server does not serve ---------------------------------------------------------------
def test_a_model_the_server_does_not_list_stops_before_any_call(run, server):
    server.configure(models=["qwen2.5-coder-0.5b-instruct"])
    with pytest.raises(LabelingAborted) as info:
        run(make_df(SURE), model="gpt-4o-mini")
    assert server.requests == 0 and info.value.reason == "model_not_served"
    assert (
        "does not serve model 'gpt-4o-mini' (RECSYS_LLM_MODEL); its /models lists: "
        "qwen2.5-coder-0.5b-instruct. Set RECSYS_LLM_MODEL to one of them."
    ) in str(info.value)


def test_a_listed_model_is_checked_once_per_run_and_not_when_nothing_is_sent(run, server):
    server.configure(models=["other", "qwen2.5:latest"])
    df = make_df(SURE)
    run(df, model="qwen2.5")  # Ollama's name without its :latest tag
    assert server.model_list_requests == 1 and server.requests == 4
    run(df, model="qwen2.5")  # everything is in the ledger: no request of any kind
    assert server.model_list_requests == 1 and server.requests == 4


def test_model_matching():
    assert _model_is_served("m", ["m"]) and _model_is_served("qwen2.5", ["qwen2.5:latest"])
    assert not _model_is_served("gpt-4o-mini", ["qwen2.5-coder-0.5b-instruct"])


# -- b, e: the CLI - the real cause last; the cascade delivers its offline rows when the LLM stops ---------
@pytest.fixture
def cli_env(recsys_home, server):
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OPENAI_API_KEY": fake_key(),
        "OPENAI_BASE_URL": server.base_url,
        "RECSYS_LLM_BACKOFF_BASE": "0.005",
        "RECSYS_LLM_BACKOFF_MAX": "0.01",
        "RECSYS_LLM_TIMEOUT": "5",
    }


def recsys_label(
    env: dict[str, str], src: Path, out: Path, labeler: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "recsys_assets.cli",
            "label",
            str(src),
            "-o",
            str(out),
            "--labeler",
            labeler,
            "--no-progress",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def last_line(text: str) -> str:
    return [ln for ln in text.strip().splitlines() if ln.strip()][-1]


def test_cli_llm_refused_method_exits_1_with_the_refusal_last(cli_env, server, tmp_path):
    server.configure(refuse={"json_schema": 500})
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    make_df(SURE * 2).to_csv(src, index=False)
    res = recsys_label({**cli_env, "RECSYS_LLM_STRUCTURED": "json_schema"}, src, out, "llm")
    assert res.returncode == 1, res.stderr
    assert last_line(res.stderr).startswith(
        "error: the server refused RECSYS_LLM_STRUCTURED=json_schema (response_format json_schema): "
        f"HTTP 500 {REFUSED_JSON_SCHEMA}. Set RECSYS_LLM_STRUCTURED=auto"
    ), res.stderr
    assert server.requests == 1 and not out.exists()


@pytest.mark.parametrize(
    ("env_extra", "fake", "cause"),
    [
        (
            {"RECSYS_LLM_STRUCTURED": "json_schema"},
            {"refuse": {"json_schema": 500}},
            "the LLM part stopped: the server refused RECSYS_LLM_STRUCTURED=json_schema",
        ),
        (
            {"RECSYS_LLM_MODEL": "gpt-4o-mini"},
            {"models": ["qwen"]},
            "the LLM part stopped: the server at http://127.0.0.1:",
        ),
    ],
    ids=["refused-method", "model-not-served"],
)
def test_cli_cascade_delivers_its_offline_rows_when_the_llm_part_stops(
    cli_env, server, tmp_path, env_extra, fake, cause
):
    server.configure(**fake)
    df = make_df(SURE + UNSURE + SURE)
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    df.to_csv(src, index=False)
    res = recsys_label({**cli_env, **env_extra}, src, out, "cascade")
    assert res.returncode == 3, res.stderr
    got = pd.read_csv(out, dtype={"flagged": str}, keep_default_na=False)
    llm_rows = got["source"] == "cascade_llm"
    assert got["restaurant_id"].tolist() == df["restaurant_id"].tolist()
    assert (
        llm_rows.sum() == len(UNSURE) and (got.loc[~llm_rows, "source"] == "cascade_offline").all()
    )
    assert (got.loc[~llm_rows, "label_status"] == "ok").all()
    assert got.loc[~llm_rows, "industry"].tolist() == expected_labels(df[~llm_rows.to_numpy()])
    assert (got.loc[llm_rows, "label_status"] == "unanswered").all()
    assert (got.loc[llm_rows, "flagged"] == "True").all()
    line = last_line(res.stderr)
    assert line.startswith(
        f"error: {len(UNSURE)} of {len(df)} row(s) got no answer from the model ({cause}"
    ), res.stderr
    assert server.requests == len(fake.get("refuse", {}))  # the refused probe, or nothing

    server.configure(refuse={}, models=None)  # fixed: the rerun asks only for the LLM rows
    res = recsys_label(cli_env, src, out, "cascade")
    assert res.returncode == 0, res.stderr
    assert server.requests == len(fake.get("refuse", {})) + len(UNSURE)
    assert "structured output: json_schema (auto)" in res.stderr
    assert set(pd.read_csv(out)["label_status"]) == {"ok"}
