"""The access log: one line per request, without the query string, because tokens and
passwords may travel there (`?access_token=`, `?password=`), and with the path as sent, so that
no encoded newline in it can forge a line."""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %d %.1fms",
            request.remote,
            request.method,
            request.rel_url.raw_path,  # still percent-encoded: a %0a cannot start a forged line
            response.status,
            time * 1000,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
