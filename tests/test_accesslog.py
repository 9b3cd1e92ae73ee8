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


def test_an_encoded_newline_in_the_path_cannot_forge_a_line(caplog):
    logger = logging.getLogger("test.access")
    request = make_mocked_request("GET", "/users/access_token/validate%0aFAKE%20200")
    with caplog.at_level(logging.INFO, logger="test.access"):
        AccessLogger(logger, "").log(request, web.Response(status=404), 0.001)
    [line] = caplog.messages
    assert "\n" not in line
    assert "/users/access_token/validate%0AFAKE%20200 404" in line
