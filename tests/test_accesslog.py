"""The access log: one JSON line per request, never the query string (where tokens and passwords
may travel), and no forged lines from the path."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from hatd.accesslog import AccessLogger, ClientErrorFilter
from hatd.state import CALLER, SETTINGS, Caller


def _line(caplog, request, status: int = 200) -> dict:
    logger = logging.getLogger("test.access")
    with caplog.at_level(logging.INFO, logger="test.access"):
        AccessLogger(logger, "").log(request, web.Response(status=status), 0.0123)
    [line] = caplog.messages
    assert "\n" not in line
    return json.loads(line)


def test_a_line_is_json_without_the_query(caplog):
    request = make_mocked_request(
        "GET", "/users/access_token?username=alice&password=hunter2&access_token=eyJ", app=web.Application()
    )
    entry = _line(caplog, request, 401)
    assert entry["method"] == "GET" and entry["path"] == "/users/access_token"
    assert entry["status"] == 401 and entry["ms"] == 12.3 and entry["role"] is None
    assert "hunter2" not in json.dumps(entry) and "eyJ" not in json.dumps(entry)


def test_the_callers_role_is_logged(caplog):
    request = make_mocked_request("GET", "/users/user", app=web.Application())
    request[CALLER] = Caller(user_id="u", role="owner")
    assert _line(caplog, request)["role"] == "owner"


def test_an_encoded_newline_in_the_path_cannot_forge_a_line(caplog):
    request = make_mocked_request("GET", "/users/access_token/validate%0aFAKE%20200", app=web.Application())
    assert _line(caplog, request, 404)["path"] == "/users/access_token/validate%0AFAKE%20200"


def test_behind_a_trusted_proxy_the_client_address_is_logged(caplog, settings):
    app = web.Application()
    app[SETTINGS] = settings.replace(trusted_proxies="127.0.0.1")
    request = make_mocked_request("GET", "/health", headers={"X-Forwarded-For": "203.0.113.9"}, app=app)
    assert _line(caplog, request.clone(remote="127.0.0.1"))["remote"] == "203.0.113.9"
    caplog.clear()
    assert _line(caplog, request.clone(remote="192.0.2.1"))["remote"] == "192.0.2.1"  # not a trusted proxy


async def test_a_request_the_parser_refuses_gets_a_line_and_no_traceback(caplog, settings):
    """Sent over a real socket: aiohttp's parser refuses the request before routing, and the
    access log still writes its line (it once failed on the missing route, with a traceback)."""
    app = web.Application()
    app[SETTINGS] = settings
    runner = web.AppRunner(app, access_log_class=AccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server_log, quiet = logging.getLogger("aiohttp.server"), ClientErrorFilter()
    server_log.addFilter(quiet)
    try:
        with caplog.at_level(logging.INFO):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /users/user HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n")
            answer = await reader.read()
            writer.close()
    finally:
        server_log.removeFilter(quiet)
        await runner.cleanup()
    assert answer.startswith(b"HTTP/1.0 400 ")
    [line] = [json.loads(r.message) for r in caplog.records if r.name == "aiohttp.access"]
    assert line["status"] == 400 and line["route"] is None and line["remote"] == "127.0.0.1"
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /users/access_token HTTP/1.1\r\nHost: a\r\npassword: owner-pass\x01word\r\n\r\n",
        b"GET /users/access_token?password=owner-pass HTTP/1.1 x\r\nHost: a\r\n\r\n",
        b"G\x01T /users/access_token?password=owner-pass HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /users/access_token HTTP/1.1\r\nHost: a\r\nX-" + b"owner-pass" * 900 + b": 1\r\n\r\n",
    ],
)
async def test_a_refused_request_logs_the_errors_kind_never_its_bytes(caplog, settings, request_bytes):
    app = web.Application()
    app[SETTINGS] = settings
    runner = web.AppRunner(app, access_log_class=AccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server_log, quiet = logging.getLogger("aiohttp.server"), ClientErrorFilter()
    server_log.addFilter(quiet)
    try:
        with caplog.at_level(logging.INFO):
            reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
            writer.write(request_bytes)
            assert (await reader.read()).startswith(b"HTTP/1.0 4")
            writer.close()
    finally:
        server_log.removeFilter(quiet)
        await runner.cleanup()
    for refused in [r for r in caplog.records if r.name == "aiohttp.server"]:
        assert refused.getMessage().startswith("Error handling request from 127.0.0.1: ") and not refused.exc_info
    assert "owner-pass" not in caplog.text
