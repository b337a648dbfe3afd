"""What a labeling run will cost before it runs: tokens, dollars and wall time (`--dry-run`).

Plain arithmetic over the requests the run would send, with no network call. Tokens are counted
by the rule the engine's rate limiter uses (`llm.approx_tokens`: a Hangul syllable ~1 token, ~4
ASCII characters per token) rather than tiktoken, whose encodings are downloaded on first use: a
dry run must not touch the network. The rule leans high for Korean text on recent OpenAI
tokenizers; `recsys ledger stats` shows the real counts after a run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from recsys_assets import taxonomy
from recsys_assets.labeling.llm import PER_MESSAGE_TOKENS, LabelItem, approx_tokens, user_message

# Per-call latency assumed when neither RECSYS_LLM_ASSUMED_LATENCY nor the ledger says better:
# a hosted small model (first token ~0.4 s, then ~100 output tokens/s). A CPU server is far
# slower (p50 ~23 s per call measured): set the variable, or let one real run fill the ledger.
DEFAULT_FIRST_TOKEN_S = 0.4
DEFAULT_OUTPUT_TOKENS_PER_S = 100.0
REASON_WORDS = 15  # the prompt asks for a reason of at most 15 words


@dataclass(frozen=True)
class Estimate:
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None  # None: no price known for the model (RECSYS_LLM_PRICE_IN/_OUT)
    latency_s: float  # per call
    latency_source: str  # "RECSYS_LLM_ASSUMED_LATENCY", "ledger median of N calls", "assumed"
    wall_s: float
    bound: str  # what limits the wall time: "concurrency", "rpm" or "tpm"


def batches(items: Sequence[LabelItem], items_per_call: int) -> list[list[LabelItem]]:
    """The calls the engine makes: the pending inputs in order, `items_per_call` at a time."""
    return [list(items[i : i + items_per_call]) for i in range(0, len(items), items_per_call)]


def input_tokens(system_prompt: str, calls: Sequence[Sequence[LabelItem]]) -> int:
    """The prompt tokens of these calls: the system prompt each time, plus each call's items."""
    system = approx_tokens(system_prompt) + PER_MESSAGE_TOKENS
    return sum(system + approx_tokens(user_message(c)) + PER_MESSAGE_TOKENS for c in calls)


def output_tokens(n_items: int, max_tokens: int | None = None) -> int:
    """A full-length answer for one call of `n_items`, rendered in the answer schema's shape:
    the longest industry code, a confidence, a 15-word reason (an upper-side estimate);
    at most `max_tokens` when the request caps the answer."""
    code = max(taxonomy.INDUSTRY_CODES, key=len)
    reason = " ".join(["words"] * REASON_WORDS)
    item = {"industry": code, "confidence": 0.95, "reason": reason}
    if n_items <= 1:
        answer: object = item
    else:
        answer = {"items": [{"id": f"r{i + 1}", **item} for i in range(n_items)]}
    tokens = approx_tokens(json.dumps(answer, ensure_ascii=False))
    return min(tokens, max_tokens) if max_tokens else tokens


def default_latency_s(tokens_out_per_call: float) -> float:
    return DEFAULT_FIRST_TOKEN_S + tokens_out_per_call / DEFAULT_OUTPUT_TOKENS_PER_S


def wall_time(
    calls: int,
    concurrency: int,
    latency_s: float,
    *,
    rpm: int | None = None,
    tpm: int | None = None,
    tokens: int = 0,
) -> tuple[float, str]:
    """Seconds for `calls` calls of `latency_s` each with `concurrency` in flight, under the
    engine's requests- and tokens-per-minute limits; and which of the three is the bound.
    No retries, re-asks or backoff are assumed."""
    if calls <= 0:
        return 0.0, "concurrency"
    bounds = {"concurrency": math.ceil(calls / max(1, concurrency)) * latency_s}
    if rpm:
        bounds["rpm"] = calls / rpm * 60.0 + latency_s
    if tpm:
        bounds["tpm"] = tokens / tpm * 60.0 + latency_s
    bound = max(bounds, key=lambda k: bounds[k])
    return bounds[bound], bound


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
