"""The settings object is the one reader of the environment, and it keeps secrets out of sight."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import recsys_assets
from recsys_assets.config import ConfigError, load_settings

PACKAGE = Path(recsys_assets.__file__).parent
ENV_ACCESS = re.compile(
    r"\bos\.(environ|getenv|putenv|unsetenv)\b|\bfrom os import\b.*\b(environ|getenv)\b"
)


def test_only_config_touches_the_environment():
    readers = sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if ENV_ACCESS.search(p.read_text(encoding="utf-8"))
    )
    assert readers == ["config.py"], f"modules reading os.environ outside config.py: {readers}"


def test_every_setting_is_a_typed_field(monkeypatch):
    for name, value in {
        "RECSYS_LLM_MAX_CONCURRENCY": "3",
        "RECSYS_LLM_RPM": "100",
        "RECSYS_LLM_TIMEOUT": "7.5",
        "RECSYS_CASCADE_MARGIN": "0.5",
        "RECSYS_LEDGER_URL": "sqlite:////tmp/x.sqlite",
        "RECSYS_LEDGER_LEASE_SECONDS": "42",
        "RECSYS_RANK_CUTOFF": "2025-01-15",
        "RECSYS_PROMOTION_MARGIN": "0.01",
        "RECSYS_NDCG_FLOOR": "0.2",
        "RECSYS_REBUILD_CRON": "0 1 * * *",
        "RECSYS_REBUILD_TIMEZONE": "UTC",
    }.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert (s.llm.max_concurrency, s.llm.rpm, s.llm.timeout_s, s.llm.cascade_margin) == (
        3,
        100,
        7.5,
        0.5,
    )
    assert (s.ledger.url, s.ledger.lease_seconds) == ("sqlite:////tmp/x.sqlite", 42.0)
    assert (s.ranking.cutoff, s.ranking.promotion_margin, s.ranking.ndcg_floor) == (
        "2025-01-15",
        0.01,
        0.2,
    )
    assert (s.ranking.rebuild_cron, s.ranking.rebuild_timezone) == ("0 1 * * *", "UTC")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "RECSYS_LLM_MAX_CONCURRENCY",
            "many",
            "RECSYS_LLM_MAX_CONCURRENCY must be an integer, got 'many'",
        ),
        ("RECSYS_LLM_BACKOFF_BASE", "x", "RECSYS_LLM_BACKOFF_BASE must be a number, got 'x'"),
        ("RECSYS_CASCADE_MARGIN", "-1", "RECSYS_CASCADE_MARGIN must be >= 0, got -1.0"),
        ("RECSYS_LEDGER_LEASE_SECONDS", "0", "RECSYS_LEDGER_LEASE_SECONDS must be > 0, got 0.0"),
        ("RECSYS_NDCG_FLOOR", "high", "RECSYS_NDCG_FLOOR must be a number, got 'high'"),
    ],
)
def test_malformed_values_name_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == message


def test_secrets_never_show_in_repr(monkeypatch):
    key, hook = "sk-test-" + "s" * 32, "https://hooks.example/T0/secret-token"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("RECSYS_ALERT_WEBHOOK", hook)
    s = load_settings()
    assert s.llm.api_key_value == key and s.alerts.webhook_url_value == hook
    for text in (repr(s), str(s), repr(s.llm), str(s.llm.api_key), repr(s.alerts)):
        assert key not in text and "secret-token" not in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("llm", "llm"),
        ("openai", "llm"),
        ("OpenAI", "llm"),
        ("cascade", "cascade"),
        ("offline", "offline"),
    ],
)
def test_labeler_has_one_name_and_openai_is_a_deprecated_alias(monkeypatch, value, expected):
    monkeypatch.setenv("RECSYS_LABELER", value)
    assert load_settings().labeler == expected
    assert load_settings(labeler=value).labeler == expected


def test_unknown_labeler_is_refused(monkeypatch):
    monkeypatch.setenv("RECSYS_LABELER", "gpt")
    with pytest.raises(
        ConfigError, match="RECSYS_LABELER must be one of auto, offline, llm, cascade"
    ):
        load_settings()
