"""Keep access tokens out of every log record and error text.

httpx logs each request URL, and the documented way to authenticate puts the token in
that URL's query string. Rather than relying on care at every call site, a logging
filter sits on the loggers that see URLs and scrubs every token any live client has
registered, plus anything shaped like ``access_token=...``.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"
_QUERY_TOKEN = re.compile(r"(access_token=)[^&\s\"'<>]*", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[^\s\"'<>]+", re.IGNORECASE)

_lock = threading.Lock()
_secrets: dict[str, int] = {}  # token -> number of live registrations

SCRUBBED_LOGGERS = (
    "grader",
    "grader.api",
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
)
"""Loggers that may see a URL; a logger's filters do not apply to its children."""


def register_secret(secret: str) -> None:
    """Scrub ``secret`` from logs and errors until ``forget_secret``."""
    if not secret:
        return
    with _lock:
        _secrets[secret] = _secrets.get(secret, 0) + 1


def forget_secret(secret: str) -> None:
    """Undo one ``register_secret``."""
    with _lock:
        left = _secrets.get(secret, 0) - 1
        if left > 0:
            _secrets[secret] = left
        else:
            _secrets.pop(secret, None)


def redact(text: str) -> str:
    """``text`` with every registered token and ``access_token=`` value masked."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    text = _QUERY_TOKEN.sub(rf"\g<1>{MASK}", text)
    return _BEARER.sub(rf"\g<1>{MASK}", text)


class TokenFilter(logging.Filter):
    """Rewrites each record's final message with tokens masked (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message or record.args:
            record.msg = clean
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # The formatter would print the exception text later; render it scrubbed now.
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted)
        return True


_FILTER = TokenFilter()


def install_log_filter() -> None:
    """Attach the token filter to every logger that can see a URL (idempotent)."""
    for name in SCRUBBED_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
