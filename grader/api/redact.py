"""Keep an access token out of every log record and error text.

httpx logs each request URL, and the documented way to authenticate puts the token in
that URL's query string. Rather than relying on care at every call site, whoever holds
a token owns one ``TokenFilter`` for it (the client for its life, the grade command's
run log for the whole run): it masks that token, and anything shaped like
``access_token=...`` or ``Bearer ...``, in log records and in the error texts it cleans.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_QUERY_TOKEN = re.compile(r"(access_token=)[^&\s\"'<>]*", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[^\s\"'<>]+", re.IGNORECASE)

URL_LOGGERS = (
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


def redact(text: str, token: str = "") -> str:
    """``text`` with ``token`` and every ``access_token=`` or ``Bearer`` value masked."""
    if token:
        text = text.replace(token, MASK)
    text = _QUERY_TOKEN.sub(rf"\g<1>{MASK}", text)
    return _BEARER.sub(rf"\g<1>{MASK}", text)


class TokenFilter(logging.Filter):
    """Masks one token in each record's final message (never drops a record)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def __repr__(self) -> str:
        return "TokenFilter('***')"

    def redact(self, text: str) -> str:
        """``text`` with this filter's token (and any token-shaped value) masked."""
        return redact(text, self._token)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message or record.args:
            record.msg = clean
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # The formatter would print the exception text later; render it scrubbed now
            # (another owner's filter may have rendered it already: scrub that text).
            formatted = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redact(formatted)
        return True

    def attach(self) -> None:
        """Scrub every logger that can see a URL, until ``detach`` (idempotent)."""
        for name in URL_LOGGERS:
            logger = logging.getLogger(name)
            if self not in logger.filters:
                logger.addFilter(self)

    def detach(self) -> None:
        """Undo ``attach``; other owners' filters stay."""
        for name in URL_LOGGERS:
            logging.getLogger(name).removeFilter(self)
