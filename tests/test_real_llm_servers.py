"""Smoke test of the real OpenAI-compatible CPU servers: what each one does with each request shape.

Real `ChatOpenAI` calls against llama-cpp-python's server and llama.cpp's `llama-server`, both
serving Qwen2.5-Coder-0.5B-Instruct (Q4 GGUF) from the cache `.ci/llm_servers.sh` builds. The
matrix below is what was observed with llama-cpp-python 0.3.36 and the llama.cpp it vendors; the
labeler's structured-output negotiation relies on it, so a server upgrade that changes a cell
fails here first. Only the *shape* of the answer is asserted, never the model's label: a 0.5B
model's industry is not stable enough to test (it calls a fried-chicken chain a cafe).
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from tests.llm_servers import LlmServer

pytestmark = [pytest.mark.real_llm, pytest.mark.slow]

OK, REFUSED, NO_TOOL_CALL = "ok", "refused", "no_tool_call"

# server kind -> request shape -> outcome
MATRIX: dict[str, dict[str, str]] = {
    "llama-cpp-python": {
        "json_schema": REFUSED,
        "function_calling": OK,
        "json_mode": OK,
        "json_object_schema": OK,
    },
    # llama-server answers a forced tool call with the call written as JSON in the content.
    "llama-server": {
        "json_schema": OK,
        "function_calling": NO_TOOL_CALL,
        "json_mode": OK,
        "json_object_schema": OK,
    },
}
# The `model` a server puts in its answer when asked for a model it does not serve: llama-cpp-python
# echoes any name (a wrong RECSYS_LLM_MODEL goes unnoticed); llama-server names what it serves.
ECHOES_ANY_MODEL = {"llama-cpp-python": True, "llama-server": False}
# After the client gives up on a request: llama-cpp-python generates to max_tokens anyway (and a
# one-at-a-time server makes the next request wait for it); llama-server cancels the task.
KEEPS_GENERATING_AFTER_DISCONNECT = {"llama-cpp-python": True, "llama-server": False}
CALL_TIMEOUT_S = 300  # a grammar-constrained answer on 2 shared cores; see the report for figures


class Answer(BaseModel):
    """The restaurant's industry."""

    industry: Literal["chicken", "pizza", "cafe_dessert", "korean"]
    confidence: int = Field(ge=0, le=100)


MESSAGES = [
    (
        "system",
        (
            'You label restaurants. Answer with JSON only: {"industry": one of chicken, '
            'pizza, cafe_dessert, korean; "confidence": an integer 0-100}.'
        ),
    ),
    ("human", "Restaurant: 교촌치킨 강남점. Menu: 후라이드치킨, 양념치킨, 치킨무."),
]


def _chat(server: LlmServer, model: str | None = None):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=model or server.model,
        base_url=server.base_url,
        api_key="unused",
        temperature=0,
        max_tokens=64,
        max_retries=0,
        timeout=CALL_TIMEOUT_S,
        use_responses_api=False,
    )


def _outcome(server: LlmServer, shape: str) -> tuple[str, Any]:
    """Send one request of `shape`; classify what came back as ok / refused / no_tool_call."""
    import openai

    llm = _chat(server)
    try:
        if (
            shape == "json_object_schema"
        ):  # llama.cpp's extension: json_object constrained by a schema
            raw = llm.bind(
                response_format={"type": "json_object", "schema": Answer.model_json_schema()}
            ).invoke(MESSAGES)
            return OK, Answer.model_validate_json(raw.content)
        out = llm.with_structured_output(Answer, method=shape, include_raw=True).invoke(MESSAGES)
    except openai.APIStatusError as exc:
        return REFUSED, exc
    if shape == "function_calling" and not out["raw"].tool_calls:
        return NO_TOOL_CALL, out["raw"]
    assert out["parsing_error"] is None, f"{server.kind} {shape}: {out['parsing_error']!r}"
    return OK, out["parsed"]


@pytest.mark.parametrize(
    "shape", ["json_schema", "function_calling", "json_mode", "json_object_schema"]
)
def test_structured_output_shape(real_llm_server: LlmServer, shape: str, record_property) -> None:
    outcome, detail = _outcome(real_llm_server, shape)
    record_property(f"{real_llm_server.kind}:{shape}", outcome)
    expected = MATRIX[real_llm_server.kind][shape]
    assert outcome == expected, f"{real_llm_server.kind} {shape}: {outcome} ({detail!r:.300})"
    if outcome == OK:
        assert isinstance(detail, Answer)
    if outcome == REFUSED:
        # The refusal names the request field, so the labeler can say what the server refused.
        assert detail.status_code == 500 and "json_object" in str(detail), str(detail)[:300]


def test_models_lists_the_served_alias(real_llm_server: LlmServer) -> None:
    assert real_llm_server.model in real_llm_server.models_seen


def test_model_name_in_the_answer(real_llm_server: LlmServer) -> None:
    asked = "gpt-4o-mini"
    answer = _chat(real_llm_server, model=asked).bind(max_tokens=1).invoke("Say OK")
    named = answer.response_metadata.get("model_name")
    expected = asked if ECHOES_ANY_MODEL[real_llm_server.kind] else real_llm_server.model
    assert named == expected, f"{real_llm_server.kind} answered as model {named!r}"


def _log_since(server: LlmServer, offset: int) -> str:
    return server.log_path.read_text(errors="replace")[offset:]


def test_what_happens_after_the_client_gives_up(real_llm_server: LlmServer) -> None:
    """A client timeout frees the server only on llama-server; evidence from the server's log."""
    import httpx

    server = real_llm_server
    # llama-server notices the disconnect between tokens, and an idle 2-core VM decodes 64 tokens
    # in ~1.6 s (measured): the story must outlast that, or it ends before any cancel is seen.
    max_tokens = 64 if KEEPS_GENERATING_AFTER_DISCONNECT[server.kind] else 1024
    offset = len(server.log_path.read_text(errors="replace"))
    body = {
        "model": server.model,
        "max_tokens": max_tokens,
        "temperature": 0,
        "messages": [{"role": "user", "content": "Write a long story about a bakery."}],
    }
    with pytest.raises(httpx.TimeoutException):  # 64 tokens take seconds on a CPU
        httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=0.5)
    # A one-token request: on a one-at-a-time server it waits for the abandoned one to finish.
    httpx.post(
        f"{server.base_url}/chat/completions",
        timeout=CALL_TIMEOUT_S,
        json={**body, "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]},
    )
    if KEEPS_GENERATING_AFTER_DISCONNECT[server.kind]:
        # llama.cpp's perf line for the abandoned request: max_tokens - 1 decode runs.
        runs = [
            int(n) for n in re.findall(r"eval time =.*?/\s*(\d+) runs", _log_since(server, offset))
        ]
        assert max_tokens - 1 in runs, f"decode runs seen: {runs}"
    else:
        deadline = time.monotonic() + 30
        while "cancel task" not in _log_since(server, offset):
            assert time.monotonic() < deadline, _log_since(server, offset)[-2000:]
            time.sleep(0.1)  # poll interval for the log line
