"""Keep API keys out of everything we print, store or send (logs, ledger, alerts, metadata)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from recsys_assets.config import configured_secrets

_SK_RE = re.compile(r"sk-[A-Za-z0-9_\-]{6,}")


def scrub(text: object, secrets: Sequence[str | None] = ()) -> str:
    """Remove the given secrets, the configured OPENAI_API_KEY and anything shaped like sk-..."""
    out = str(text)
    for secret in (*secrets, *configured_secrets()):
        if secret and len(secret) >= 6:
            out = out.replace(secret, "***")
    return _SK_RE.sub("sk-***", out)
