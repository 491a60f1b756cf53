"""Logging helpers: keep secrets out of log lines."""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    # bot tokens in Telegram API URLs, access tokens and signatures in query strings
    re.compile(r"(bot)\d+:[A-Za-z0-9_-]{20,}"),
    re.compile(r"((?:access_token|token|secret|password|signature|sig)=)[^&\s\"']+", re.I),
    re.compile(
        r"((?:authorization|x-viber-auth-token|x-hub-signature-256|x-telegram-bot-api-secret-token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+",
        re.I,
    ),
]


def redact(text: str) -> str:
    """Replace anything that looks like a secret with a placeholder."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "[redacted]", text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Redact tokens and signatures from every record before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = ()
        return True
