"""The access log: one JSON line per request with its method, route name, status, duration and
the caller's role. Never the query string, a token, a password or a value: tokens and passwords
may travel in the query (`?access_token=`, `?password=`); the path is written as sent, still
percent-encoded, so nothing in it can forge a line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, StreamResponse

from hatd.http import client_address
from hatd.routing import route_of
from hatd.state import CALLER


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        route = route_of(request)  # type: ignore[arg-type]
        # A request aiohttp's parser refused never reached routing: it has no app to read settings
        # (trusted proxies) from, so its peer address is logged.
        routed = getattr(request, "_match_info", None) is not None
        remote = client_address(request) if routed else request.remote  # type: ignore[arg-type]
        caller = request.get(CALLER)  # type: ignore[call-overload]
        self.logger.info(
            json.dumps(
                {
                    "at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "method": request.method,
                    "path": request.rel_url.raw_path,
                    "route": route.name if route else None,
                    "status": response.status,
                    "ms": round(time * 1000, 1),
                    "role": caller.role if caller else None,
                    "remote": remote or None,
                },
                separators=(",", ":"),
            )
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


# The plain words a parser error's message starts with ("Invalid header value char"), before the
# bytes it quotes (after a ':' or a quote).
_ERROR_KIND = re.compile(r"[A-Za-z0-9 ,.()-]*")


def error_kind(exc: HttpProcessingError) -> str:
    """What kind of error the parser found, without any of the request's bytes: its message quotes
    them (a header line, the request line with its query), and they may hold a password or token."""
    match = _ERROR_KIND.match(exc.message or "")
    words = (match.group() if match else "").strip()[:80]
    return f"{type(exc).__name__} ({words})" if words else type(exc).__name__


class ClientErrorFilter(logging.Filter):
    """For aiohttp's server log: a request its parser refuses (a malformed request line, header or
    body framing) is the client's mistake, answered with a 4xx and written to the access log. It
    is logged here in one line without a traceback, rather than as a server error, and with the
    error's kind only (error_kind), never the request's bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            record.msg = f"{record.getMessage()}: {error_kind(exc)}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
