"""The test server (tests/fake_openai_server.py) behind a provider's rate limits, for planning.

A provider admits so many requests and tokens per minute per organisation, whatever the number
of workers calling it; over the limit it answers 429 at once with Retry-After (and
retry-after-ms), as OpenAI does. Both limits are token buckets refilled continuously at
limit/60 per second, holding at most `burst_s` seconds of refill. A request's token cost is its
prompt (the server's approximate token count) plus its max_tokens, the way OpenAI reserves TPM.
Rejected requests are counted under faults["provider_limit"] in GET /stats.

    python tests/rate_limited_openai.py --rpm 3000 --tpm 2000000 --latency-ms 800
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script by benchmarks

from tests.fake_openai_server import FakeOpenAI, approx_tokens


class Bucket:
    """`per_minute` units refilled continuously; `take` answers how long to wait (0: taken)."""

    def __init__(self, per_minute: float, burst_s: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level = self.capacity
        self.at = time.monotonic()

    def wait_for(self, n: float, now: float) -> float:
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now
        return 0.0 if self.level >= n else (n - self.level) / self.rate


class RateLimitedOpenAI(FakeOpenAI):
    def __init__(
        self, *, rpm: float | None, tpm: float | None, burst_s: float = 1.0, **kwargs: Any
    ) -> None:
        self._limits_lock = threading.Lock()
        self._rpm = Bucket(rpm, burst_s) if rpm else None
        self._tpm = Bucket(tpm, burst_s) if tpm else None
        self.admitted_tokens = 0  # charged to TPM by the requests it let through
        super().__init__(**kwargs)

    @staticmethod
    def charge(body: dict[str, Any]) -> int:
        """The tokens a request costs against TPM: its prompt plus its max_tokens."""
        prompt = "".join(
            m.get("content") if isinstance(m.get("content"), str) else json.dumps(m.get("content"))
            for m in body.get("messages", [])
        )
        return approx_tokens(prompt) + int(
            body.get("max_tokens") or body.get("max_completion_tokens") or 0
        )

    def admit(self, body: dict[str, Any]) -> float:
        """0 when the request fits both limits (and is charged to them), else seconds to wait."""
        tokens = self.charge(body)
        with self._limits_lock:
            now = time.monotonic()
            waits = [
                b.wait_for(n, now)
                for b, n in ((self._rpm, 1.0), (self._tpm, float(tokens)))
                if b is not None
            ]
            wait = max(waits, default=0.0)
            if wait == 0.0:
                if self._rpm is not None:
                    self._rpm.level -= 1.0
                if self._tpm is not None:
                    self._tpm.level -= tokens
                self.admitted_tokens += tokens
        return wait

    def _handler_class(self):
        base = super()._handler_class()
        fake = self

        class Limited(base):  # type: ignore[misc,valid-type]
            def _handle(self, body: dict[str, Any]) -> None:
                wait = fake.admit(body)
                if wait > 0:
                    with fake.lock:
                        fake.faults["provider_limit"] = fake.faults.get("provider_limit", 0) + 1
                    self._error(
                        429,
                        "Rate limit reached for requests or tokens per minute.",
                        "requests",
                        "rate_limit_exceeded",
                        {
                            "Retry-After": str(math.ceil(wait)),
                            "retry-after-ms": str(math.ceil(wait * 1000)),
                        },
                    )
                    return
                super()._handle(body)

        return Limited


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--rpm", type=float, default=None)
    ap.add_argument("--tpm", type=float, default=None)
    ap.add_argument("--burst-s", type=float, default=1.0)
    args = ap.parse_args(argv)
    srv = RateLimitedOpenAI(
        rpm=args.rpm,
        tpm=args.tpm,
        burst_s=args.burst_s,
        latency_ms=args.latency_ms,
        port=args.port,
    )
    srv.keep_bodies = False
    print(srv.port, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        srv._server.serve_forever()


if __name__ == "__main__":
    main()
