"""Small helpers for text shown to people (plain Python, no dependencies)."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`1 row`, `2 rows`, `1,000 rows`: a number with its noun in the right number."""
    word = noun if n == 1 else (plural or f"{noun}s")
    return f"{n:,} {word}"
