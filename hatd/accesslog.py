"""The access log: one JSON line per request with its method, route name, status, duration and
the caller's role. Never the query string, a token, a password or a value: tokens and passwords
may travel in the query (`?access_token=`, `?password=`); the path is written as sent, still
percent-encoded, so nothing in it can forge a line."""

from __future__ import annotations

import datetime as dt
import json
import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from hatd.http import client_address
from hatd.routing import route_of
from hatd.state import CALLER


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        route = route_of(request)  # type: ignore[arg-type]
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
                    "remote": client_address(request) or None,  # type: ignore[arg-type]
                },
                separators=(",", ":"),
            )
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
