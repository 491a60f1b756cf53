import logging

from openline.core.logging import RedactSecretsFilter, redact


def test_healthz_answers_while_the_process_is_up(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_database_and_channel_layer(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "database": "ok",
        "channel_layer": "ok",
        "signing_key": "ok",
    }


def test_readyz_reports_503_when_the_channel_layer_is_down(client, db, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        response = client.get("/readyz")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 503
    assert response.json()["checks"]["channel_layer"] == "unreachable"


def test_secrets_are_redacted_from_log_lines():
    assert "[redacted]" in redact(
        "POST https://api.telegram.org/bot123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage"
    )
    assert "s3cr3t" not in redact("GET /webhook?access_token=s3cr3t&x=1")
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "token=%s", ("abc123",), None)
    RedactSecretsFilter().filter(record)
    assert "abc123" not in record.getMessage()


def test_security_headers_are_set(client, db):
    response = client.get("/login/")
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
