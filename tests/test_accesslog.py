"""The access log never carries the query string, where tokens and passwords may travel."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from hatd.accesslog import AccessLogger


def test_access_log_line_leaves_out_the_query(caplog):
    logger = logging.getLogger("test.access")
    request = make_mocked_request("GET", "/users/access_token?username=alice&password=hunter2&access_token=eyJ")
    with caplog.at_level(logging.INFO, logger="test.access"):
        AccessLogger(logger, "").log(request, web.Response(status=401), 0.0123)
    [line] = caplog.messages
    assert line.endswith("GET /users/access_token 401 12.3ms")
    assert "hunter2" not in line
    assert "eyJ" not in line
