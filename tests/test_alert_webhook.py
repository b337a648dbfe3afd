"""The alert webhook only speaks HTTP(S): a mistyped URL is reported, never opened as a file."""

from __future__ import annotations

from recsys_assets.alerts import MODEL_QUALITY, Alert, AlertStore


def test_non_http_webhook_is_refused_and_the_alert_kept(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for a webhook")
    store = AlertStore(tmp_path / "alerts.sqlite")
    store.record(Alert(kind=MODEL_QUALITY, message="ndcg below floor"), webhook_url=secret.as_uri())
    [row] = store.recent()
    assert row["message"] == "ndcg below floor"
    assert row["posted"] == 0
    assert row["post_error"] == "webhook URL must start with http:// or https://, got scheme 'file'"
