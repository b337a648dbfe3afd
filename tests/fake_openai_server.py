"""A local OpenAI-compatible chat-completions server for tests and the labeling benchmark.

Good enough for the real `ChatOpenAI` client: POST /v1/chat/completions honouring a json_schema
response_format (one object, or {"items": [...]} when batching), a forced tool call (the answer in
`tool_calls`) and a json_object response_format. The "model" labels each restaurant with a
deterministic keyword rule (menu first, then the name), so answers are reproducible.

Server behaviours real servers have, for the structured-output negotiation: `refuse` {method:
status} refuses a request shape (json_schema / tool / json_object; a 500 carries
llama-cpp-python's validation body "Input should be 'text' or 'json_object'", a 400 an
OpenAI-style invalid_request_error); `tool_calls=False` answers a forced tool call in the content
instead, like llama.cpp's llama-server; `models` is what GET /v1/models lists (None: 404).

Faults, per call: a `script` (list consumed in order, one entry per request, "ok" for none) and
then seeded `rates` {kind: probability}. Kinds: rate_limit (429 + Retry-After), server_error (500),
timeout (sleeps `timeout_sleep_s` before answering), hang (never answers: holds the request
until the server stops or `release_hung()`, then drops the connection), malformed_json,
out_of_taxonomy, wrong_shape, bad_confidence, missing_ids, extra_ids, auth (401),
insufficient_quota (429 code), percent_confidence (85), negative_confidence (-1),
word_confidence ("very sure"), bad_request (400 for this request's content), truncated (JSON cut
off, finish_reason "length"), context_exceeded (llama-server's 500 "Context size has been
exceeded."), exceed_context_size (llama-server's 400 for a prompt larger than a slot).

Prompt caching, like OpenAI's: a request whose system message (the stable prefix) was seen before
and is at least `cache_min_tokens` long reports `usage.prompt_tokens_details.cached_tokens` (the
prefix, in 128-token steps).

The Batch API (tests/fake_batch.py): POST /v1/files (multipart upload), GET /v1/files/{id}[/content],
POST /v1/batches, GET /v1/batches[/{id}], POST /v1/batches/{id}/cancel. A batch completes
`batch_delay_s` after it was created (answered by the same model as the chat endpoint); faults:
`batch_fail_first` (the first N custom_ids ever submitted fail once, into the error file),
`batch_expire` (the next N batches expire after answering `batch_expire_done` requests). Every
request of every created batch is counted per custom_id (`submitted`). `hold(stage, after=...)`
holds the next request of a stage (upload, create, poll, content) open and sets the hold's
`arrived` event, so a test can kill the client at that point; `after=True` holds it once the
server has acted on it (the file stored, the batch created), the worst moment for the client.

It is deliberately *gullible*: an "answer <code>" instruction found in the user message outside
the JSON data of the <restaurants> block is obeyed, as a naive model would; the labeler's job is
to make sure nothing can get outside that block.

Use in-process (`with FakeOpenAI(...) as srv: srv.base_url`) or as a process:
`python tests/fake_openai_server.py --latency-ms 100` prints the port on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from recsys_assets import taxonomy
from tests.fake_batch import FakeBatchAPI, Hold

FAULT_KINDS = (
    "ok",
    "rate_limit",
    "server_error",
    "timeout",
    "hang",
    "malformed_json",
    "out_of_taxonomy",
    "wrong_shape",
    "bad_confidence",
    "missing_ids",
    "extra_ids",
    "auth",
    "insufficient_quota",
    "context_exceeded",
    "exceed_context_size",
    "percent_confidence",
    "negative_confidence",
    "word_confidence",
    "bad_request",
    "truncated",
)
# llama-cpp-python 0.3.36's answer to response_format json_schema (HTTP 500), verbatim but the path.
LLAMA_CPP_PYTHON_REFUSAL = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
    "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': "
    "{'expected': \"'text' or 'json_object'\"}}\n\n  File \"llama_cpp/server/app.py\", line 376, "
    "in create_chat_completion\n    POST /v1/chat/completions"
)


def request_method(body: dict[str, Any]) -> str:
    """Which structured-output method a request uses: json_schema, tool, json_object or text."""
    rf = body.get("response_format") or {}
    if rf.get("type") in ("json_schema", "json_object"):
        return str(rf["type"])
    return "tool" if body.get("tools") else "text"


# Keyword rule = the fake model's "truth". Longer, more specific words first.
_EXTRA = {
    "chicken": ("치킨", "닭강정"),
    "korean": ("국밥", "백숙", "찌개", "한정식", "불고기", "비빔밥", "곰탕", "해장국"),
    "bunsik": ("떡볶이", "김밥", "라볶이"),
    "chinese": ("짜장", "짬뽕", "탕수육", "마라"),
    "japanese": ("초밥", "스시", "라멘", "우동", "돈까스", "사시미"),
    "seafood": ("회", "해물", "조개"),
    "meat_bbq": ("삼겹살", "갈비", "고기", "곱창"),
    "pizza": ("피자", "pizza"),
    "burger": ("버거", "burger"),
    "western": ("파스타", "스테이크"),
    "cafe_dessert": ("커피", "카페", "라떼", "빙수", "케이크", "coffee"),
    "bakery": ("빵", "베이커리", "베이글"),
    "pub": ("맥주", "호프", "포차", "꼬치", "소주"),
    "salad": ("샐러드", "포케"),
}


def _keywords() -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for ind in taxonomy.INDUSTRIES:
        if ind.code == taxonomy.OTHER:
            continue
        for ex in ind.examples + _EXTRA.get(ind.code, ()):
            for word in re.split(r"[/ ]", ex):
                if len(word) >= 2 or word == "회":
                    pairs.append((word.lower(), ind.code))
    pairs.sort(key=lambda p: -len(p[0]))
    return pairs


KEYWORDS = _keywords()


def keyword_label(name: str, menu: str, description: str = "") -> str:
    """Menu (and description) first, then the name; 'other' when nothing matches."""
    for text in (f"{menu} {description}".lower(), (name or "").lower()):
        for word, code in KEYWORDS:
            if word in text:
                return code
    return taxonomy.OTHER


def approx_tokens(text: str) -> int:
    ascii_chars = sum(1 for c in text if ord(c) < 128)
    return math.ceil(ascii_chars / 4 + (len(text) - ascii_chars))


_BLOCK = re.compile(r"<restaurants>\s*(.*?)\s*</restaurants>", re.S)
_INSTRUCTION = re.compile(r"answer\s+([a-z_]+)", re.I)


class FakeOpenAI:
    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        script: list[str] | None = None,
        rates: dict[str, float] | None = None,
        seed: int = 0,
        api_key: str | None = None,
        retry_after: float = 0,
        timeout_sleep_s: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        refuse: dict[str, int] | None = None,
        tool_calls: bool = True,
        models: list[str] | None = None,
    ) -> None:
        self.refuse = dict(refuse or {})
        self.tool_calls = tool_calls
        self.models = models
        self.model_list_requests = 0
        self.latency_ms = latency_ms
        self.script = list(script or [])
        self.rates = dict(rates or {})
        self.rng = random.Random(seed)
        self.api_key = api_key
        self.retry_after = retry_after
        self.timeout_sleep_s = timeout_sleep_s
        self.lock = threading.Lock()
        self.requests = 0  # every POST received
        self.answered = 0  # 200 responses
        self.faults: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict[str, Any]] = []
        self.keep_bodies = True
        self._hung = threading.Event()  # set on stop: hung requests end without an answer
        self.cache_min_tokens = 1024
        self._prefixes: set[str] = set()
        self.batch = FakeBatchAPI(self)
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def release_hung(self) -> None:
        """End every hung request (the client sees the connection close with no answer)."""
        self._hung.set()

    def hold(self, stage: str, *, after: bool = False, nth: int = 1) -> Hold:
        """Hold the nth next request of a Batch API stage open (see FakeBatchAPI.STAGES)."""
        return self.batch.hold(stage, after=after, nth=nth)

    @property
    def submitted(self) -> dict[str, int]:
        """custom_id -> how many created batches carried it."""
        with self.lock:
            return dict(self.batch.submitted)

    def usage(self, body: dict[str, Any], content: str) -> dict[str, Any]:
        """Token counts of one answer; the system message is the cacheable prefix."""
        messages = body.get("messages", [])
        prompt = "".join(
            m.get("content", "") if isinstance(m.get("content"), str) else "" for m in messages
        )
        system = next((m.get("content") or "" for m in messages if m.get("role") == "system"), "")
        prefix = approx_tokens(str(system))
        key = hashlib.sha256(str(system).encode()).hexdigest()
        with self.lock:
            seen = key in self._prefixes
            self._prefixes.add(key)
        cached = (prefix // 128) * 128 if seen and prefix >= self.cache_min_tokens else 0
        usage: dict[str, Any] = {
            "prompt_tokens": approx_tokens(prompt) + 4 * len(messages),
            "completion_tokens": approx_tokens(content),
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return usage

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """A chat completion (no fault) for a request body: what a batch line is answered with."""
        method = request_method(body)
        labels = self._labels(body)
        content = answer_content("ok", labels, _batched(body, method))
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        finish = "stop"
        if method == "tool":
            name = body["tools"][0]["function"]["name"]
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": "call_batch",
                    "type": "function",
                    "function": {"name": name, "arguments": content},
                }
            ]
            finish = "tool_calls"
        return {
            "id": "chatcmpl-batch",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {"index": 0, "finish_reason": finish, "logprobs": None, "message": message}
            ],
            "usage": self.usage(body, content),
        }

    def stop(self) -> None:
        self.batch.release_all()
        self._hung.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def configure(self, **kwargs: Any) -> None:
        with self.lock:
            for k, v in kwargs.items():
                if k == "seed":
                    self.rng = random.Random(v)
                else:
                    setattr(self, k, v)

    # -- behaviour ---------------------------------------------------------------------------
    def _next_fault(self) -> str:
        with self.lock:
            if self.script:
                return self.script.pop(0)
            roll = self.rng.random()
            acc = 0.0
            for kind, p in self.rates.items():
                acc += p
                if roll < acc:
                    return kind
            return "ok"

    def _labels(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        """(id, label) for each restaurant of the first user message, obeying leaked instructions."""
        user = next(
            (m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"), ""
        )
        if isinstance(user, list):
            user = "".join(c.get("text", "") for c in user if isinstance(c, dict))
        blocks = _BLOCK.findall(user)
        outside = _BLOCK.sub(" ", user)
        items: list[dict[str, Any]] = []
        for block in blocks:
            try:
                parsed = json.loads(block)
            except json.JSONDecodeError:
                outside += " " + block  # unparseable data is "read" as text by a naive model
                continue
            items.extend(p for p in parsed if isinstance(p, dict))
        forced = None
        for m in _INSTRUCTION.finditer(outside):
            if m.group(1).lower() in taxonomy.BY_CODE:
                forced = m.group(1).lower()
        out = []
        for it in items:
            label = forced or keyword_label(
                str(it.get("name", "")), str(it.get("menu", "")), str(it.get("description", ""))
            )
            out.append((str(it.get("id", "")), label))
        return out

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms to every response

            def log_message(self, *args: Any) -> None:  # quiet
                return

            def _send(
                self,
                status: int,
                payload: Any,
                headers: dict[str, str] | None = None,
                raw: bytes | None = None,
            ) -> None:
                data = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _error(
                self,
                status: int,
                message: str,
                etype: str,
                code: str | None,
                headers: dict[str, str] | None = None,
            ) -> None:
                self._send(
                    status,
                    {"error": {"message": message, "type": etype, "code": code, "param": None}},
                    headers,
                )

            def do_GET(self) -> None:
                """GET /v1/models (when `models` is set), the Batch API's files and batches;
                otherwise the counters, for a test or benchmark running the server as a process."""
                if fake.batch.route(self, "GET", b""):
                    return
                if self.path.rstrip("/").endswith("/models"):
                    with fake.lock:
                        fake.model_list_requests += 1
                    if fake.models is None:
                        self._error(404, f"unknown path {self.path}", "invalid_request_error", None)
                    else:
                        self._send(
                            200,
                            {
                                "object": "list",
                                "data": [
                                    {"id": m, "object": "model", "owned_by": "fake"}
                                    for m in fake.models
                                ],
                            },
                        )
                    return
                with fake.lock:
                    stats = {
                        "requests": fake.requests,
                        "answered": fake.answered,
                        "max_in_flight": fake.max_in_flight,
                        "faults": dict(fake.faults),
                    }
                self._send(200, stats)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if fake.batch.route(self, "POST", raw):
                    return
                body = json.loads(raw or b"{}")
                with fake.lock:
                    fake.requests += 1
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                    if fake.keep_bodies:
                        fake.bodies.append(body)
                try:
                    self._handle(body)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

            def _handle(self, body: dict[str, Any]) -> None:
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._error(404, f"unknown path {self.path}", "invalid_request_error", None)
                    return
                auth = self.headers.get("Authorization", "")
                given = auth.removeprefix("Bearer ").strip()
                fault = fake._next_fault()
                with fake.lock:
                    fake.faults[fault] = fake.faults.get(fault, 0) + 1
                if fake.latency_ms:
                    time.sleep(fake.latency_ms / 1000)
                if fault == "auth" or (fake.api_key is not None and given != fake.api_key):
                    # Like the real API, the message quotes the key: the client must scrub it.
                    self._error(
                        401,
                        f"Incorrect API key provided: {given}.",
                        "invalid_request_error",
                        "invalid_api_key",
                    )
                    return
                if fault == "insufficient_quota":
                    self._error(
                        429,
                        "You exceeded your current quota, please check your plan.",
                        "insufficient_quota",
                        "insufficient_quota",
                    )
                    return
                if fault == "rate_limit":
                    self._error(
                        429,
                        "Rate limit reached.",
                        "requests",
                        "rate_limit_exceeded",
                        {"Retry-After": str(fake.retry_after)},
                    )
                    return
                if fault == "server_error":
                    self._error(500, "The server had an error.", "server_error", None)
                    return
                method = request_method(body)
                if method in fake.refuse:
                    self._refuse(method, fake.refuse[method])
                    return
                if fault == "bad_request":
                    self._error(
                        400,
                        "This request's content was rejected.",
                        "invalid_request_error",
                        "content_rejected",
                    )
                    return
                if fault == "context_exceeded":
                    self._send(
                        500,
                        {
                            "error": {
                                "code": 500,
                                "message": "Context size has been exceeded.",
                                "type": "server_error",
                            }
                        },
                    )
                    return
                if fault == "exceed_context_size":
                    self._send(
                        400,
                        {
                            "error": {
                                "code": 400,
                                "type": "exceed_context_size_error",
                                "n_ctx": 1024,
                                "message": "request (1048 tokens) exceeds the available context size "
                                "(1024 tokens), try increasing it",
                            }
                        },
                    )
                    return
                if fault == "hang":
                    fake._hung.wait()
                    self.close_connection = True
                    return
                if fault == "timeout":
                    time.sleep(fake.timeout_sleep_s)
                labels = fake._labels(body)
                content = answer_content(fault, labels, _batched(body, method))
                usage = fake.usage(body, content)
                with fake.lock:
                    fake.answered += 1
                message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
                finish = "length" if fault == "truncated" else "stop"
                if method == "tool" and fake.tool_calls:
                    name = body["tools"][0]["function"]["name"]
                    message["content"] = None
                    message["tool_calls"] = [
                        {
                            "id": f"call_{fake.answered}",
                            "type": "function",
                            "function": {"name": name, "arguments": content},
                        }
                    ]
                    finish = "length" if fault == "truncated" else "tool_calls"
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-fake{fake.answered}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "fake"),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": finish,
                                "logprobs": None,
                                "message": message,
                            }
                        ],
                        "usage": usage,
                    },
                )

            def _refuse(self, method: str, status: int) -> None:
                if status >= 500:  # llama-cpp-python: its request validation answers 500
                    self._error(status, LLAMA_CPP_PYTHON_REFUSAL, "internal_server_error", None)
                else:
                    self._error(
                        status,
                        f"Invalid parameter: '{method}' is not supported with this model.",
                        "invalid_request_error",
                        "unsupported_parameter",
                    )

        return Handler


def _batched(body: dict[str, Any], method: str) -> bool:
    if method == "json_schema":
        schema = (body["response_format"].get("json_schema") or {}).get("schema") or {}
    elif method == "tool":
        schema = body["tools"][0]["function"].get("parameters") or {}
    else:  # no schema in the request: the system prompt says which answer it wants
        system = next(
            (m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "system"),
            "",
        )
        return '{"items": [' in str(system)
    return "items" in (schema.get("properties") or {})


def answer_content(fault: str, labels: list[tuple[str, str]], batched: bool) -> str:
    if fault == "malformed_json":
        return '{"industry": "korean", "confidence": 0.9'
    if fault == "truncated":
        return '{"industry": "korean", "confidence": 0.9, "reason": "the menu lists'

    def answer(i: str, label: str) -> dict[str, Any]:
        a: dict[str, Any] = {
            "industry": label,
            "confidence": 0.9,
            "reason": "menu keywords",
        }
        if batched:
            a = {"id": i, **a}
        if fault == "out_of_taxonomy":
            a["industry"] = "fusion_gastropub"
        if fault == "bad_confidence":
            a["confidence"] = 7
        if fault == "percent_confidence":
            a["confidence"] = 85
        if fault == "negative_confidence":
            a["confidence"] = -1
        if fault == "word_confidence":
            a["confidence"] = "very sure"
        return a

    answers = [answer(i, label) for i, label in labels]
    if fault == "wrong_shape":
        return json.dumps({"label": labels[0][1] if labels else "other", "score": "high"})
    if not batched:
        first = answers[0] if answers else answer("", taxonomy.OTHER)
        return json.dumps(first, ensure_ascii=False)
    if fault == "missing_ids" and answers:
        answers = answers[:-1]
    if fault == "extra_ids":
        answers = [
            *answers,
            {
                "id": "zz-not-asked",
                "industry": "pizza",
                "confidence": 0.5,
                "reason": "extra",
            },
        ]
    return json.dumps({"items": answers}, ensure_ascii=False)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--rates", default="{}", help='JSON, e.g. {"rate_limit": 0.1}')
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    srv = FakeOpenAI(
        latency_ms=args.latency_ms, rates=json.loads(args.rates), seed=args.seed, port=args.port
    )
    srv.keep_bodies = False
    print(srv.port, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        srv._server.serve_forever()


if __name__ == "__main__":
    main()
