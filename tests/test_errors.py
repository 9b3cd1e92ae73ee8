"""Every error path answers {"message", "cause"} with the right status, carries the CORS
headers, and changes nothing."""

from __future__ import annotations

import asyncio
import json

import pytest

from hatd.settings import load
from tests.conftest import OWNER, auth, new_account
from tests.openapi_check import expect_undocumented

ORIGIN = "https://app.example"


def _shape(body: dict) -> None:
    assert set(body) == {"message", "cause"}
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["cause"], str) and body["cause"]


async def _error(response, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    _shape(body)
    return body


async def _account_count(client, token: str) -> int:
    return len(await (await client.get("/users/user", headers=auth(token))).json())


@pytest.mark.parametrize(
    ("raw", "cause"),
    [
        (b"{", "The body is not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)"),
        (b"", "The request has no body; it needs a JSON one"),
        (b"   ", "The request has no body; it needs a JSON one"),
        (b'{"name": "\xc3\x28"}', "The body is not UTF-8 text"),
        (b'{"price": NaN}', "The body is not valid JSON: NaN is not JSON"),
        (b'{"price": -Infinity}', "The body is not valid JSON: -Infinity is not JSON"),
        (
            b"{'single': 'quotes'}",
            "The body is not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)",
        ),
        (b"nope", "The body is not valid JSON: Expecting value (line 1, column 1)"),
    ],
)
async def test_malformed_json_is_400(client, owner_token, raw, cause):
    response = await client.post(
        "/users/user", data=raw, headers={**auth(owner_token), "Content-Type": "application/json"}
    )
    assert await _error(response, 400) == {"message": "Malformed JSON", "cause": cause}
    assert await _account_count(client, owner_token) == 2


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        ([], "body: Invalid input type."),
        ("a string", "body: Invalid input type."),
        (42, "body: Invalid input type."),
        (
            {},
            "email: Missing data for required field.; pass: Missing data for required field.; "
            "name: Missing data for required field.; role: Missing data for required field.",
        ),
    ],
)
async def test_body_of_the_wrong_shape_is_400(client, owner_token, body, cause):
    response = await client.post("/users/user", json=body, headers=auth(owner_token))
    assert await _error(response, 400) == {"message": "Invalid request", "cause": cause}
    assert await _account_count(client, owner_token) == 2


async def test_json_null_body_is_400(client, owner_token):
    response = await client.post(
        "/users/user", data=b"null", headers={**auth(owner_token), "Content-Type": "application/json"}
    )
    assert await _error(response, 400) == {"message": "Invalid request", "cause": "body: Invalid input type."}


async def test_null_bytes_and_huge_strings_are_400_not_500(client, owner_token):
    body = {"email": "a@example.com", "pass": "pw", "name": "nul\u0000name", "role": "dataDebit"}
    response = await client.post("/users/user", json=body, headers=auth(owner_token))
    # PostgreSQL text cannot hold NUL: refused as input, never a 500.
    assert await _error(response, 400) == {
        "message": "Invalid request",
        "cause": "The body contains a NUL character (\\u0000), which text cannot hold",
    }
    # An escaped backslash followed by "u0000" is ordinary text.
    response = await client.post("/users/user", json={**body, "name": "back\\u0000slash"}, headers=auth(owner_token))
    assert response.status == 201
    assert (await response.json())["name"] == "back\\u0000slash"
    response = await client.post("/users/user", json={**body, "name": "n" * 10_000}, headers=auth(owner_token))
    assert (await _error(response, 400))["cause"] == "name: Length must be between 1 and 200."
    assert await _account_count(client, owner_token) == 3


async def test_nul_in_credentials_is_401_not_500(client):
    response = await client.get("/users/access_token", params={"username": "own\x00er", "password": "pw"})
    assert await _error(response, 401) == {
        "message": "The supplied authentication is invalid",
        "cause": "Wrong username or password",
    }


async def test_no_token_is_401(client):
    body = await _error(await client.get("/users/user"), 401)
    assert body == {
        "message": "The supplied authentication is invalid",
        "cause": "No X-Auth-Token header or query parameter",
    }


async def test_wrong_role_is_403(client, owner_token):
    _, token = await new_account(client, owner_token, role="dataDebit")
    body = await _error(await client.get("/users/user", headers=auth(token)), 403)
    assert body == {
        "message": "Forbidden",
        "cause": "GET /users/user is for owner, platform; this is a dataDebit token",
    }


async def test_unknown_route_is_404_with_or_without_token(client, owner_token):
    for headers in ({}, auth(owner_token)):
        body = await _error(await client.get("/no/such/route", headers=headers), 404)
        assert body == {"message": "Not found", "cause": "There is no route /no/such/route"}


async def test_wrong_method_is_405_with_allow_header(client, owner_token):
    response = await client.delete("/users/user", headers=auth(owner_token))
    body = await _error(response, 405)
    assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}
    assert body["message"] == "Method not allowed"
    assert body["cause"].startswith("DELETE is not allowed on /users/user; allowed: ")


@pytest.mark.parametrize("accept", ["text/html", "application/xml, text/*;q=0.5", "application/json;q=0"])
async def test_accept_excluding_json_is_406(client, owner_token, accept):
    response = await client.get("/users/user", headers={**auth(owner_token), "Accept": accept})
    body = await _error(response, 406)
    assert body == {
        "message": "Not acceptable",
        "cause": "This route answers with application/json, which the Accept header excludes",
    }


@pytest.mark.parametrize("accept", ["application/json", "*/*", "application/*", "text/html, application/json;q=0.9"])
async def test_accept_admitting_json_is_fine(client, owner_token, accept):
    response = await client.get("/users/user", headers={**auth(owner_token), "Accept": accept})
    assert response.status == 200


@pytest.mark.parametrize("accept", ["text/plain", "application/json", "application/json, text/plain, */*", "image/png"])
async def test_publickey_is_text_whatever_the_accept_header_says(client, accept):
    # The original's clients (hat-node-sdk's request library, Angular's Http) send Accept: application/json.
    response = await client.get("/publickey", headers={"Accept": accept})
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert (await response.text()).startswith("-----BEGIN PUBLIC KEY-----")


async def test_body_over_the_limit_is_413(make_client):
    client = await make_client(max_body=1024)
    token_response = await client.get(
        "/users/access_token", headers={"username": "owner@hat.test", "password": "owner-password"}
    )
    token = (await token_response.json())["accessToken"]
    big = {"email": "big@example.com", "pass": "pw", "name": "x" * 2000, "role": "dataDebit"}
    body = await _error(await client.post("/users/user", json=big, headers=auth(token)), 413)
    assert body["message"] == "Request body too large"
    assert body["cause"].endswith("the limit is 1024")

    async def chunks():
        yield b'{"email": "big@example.com", "name": "'
        for _ in range(10):
            yield b"y" * 200
        yield b'", "pass": "pw", "role": "dataDebit"}'

    response = await client.post(
        "/users/user", data=chunks(), headers={**auth(token), "Content-Type": "application/json"}
    )
    body = await _error(response, 413)
    assert body == {"message": "Request body too large", "cause": "The request body is larger than 1024 bytes"}
    assert await _account_count(client, token) == 2


async def test_errors_carry_cors_headers(client):
    response = await client.get("/users/user", headers={"Origin": ORIGIN})
    await _error(response, 401)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    response = await client.get("/nowhere", headers={"Origin": ORIGIN})
    await _error(response, 404)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_cors_preflight_allows_x_auth_token(client):
    response = await client.options(
        "/users/user",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-auth-token, content-type",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Auth-Token" in response.headers["Access-Control-Allow-Headers"]
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


async def test_cors_refuses_other_origins(client, owner_token):
    response = await client.get("/users/user", headers={**auth(owner_token), "Origin": "https://evil.example"})
    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = await client.options(
        "/users/user", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    await _error(preflight, 405)
    assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_cors_wildcard(make_client):
    client = await make_client(cors_origins="*")
    response = await client.get("/publickey", headers={"Origin": "https://any.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://any.example"
    assert "Origin" in response.headers.getall("Vary")


async def test_by_default_a_browser_app_on_any_origin_uses_the_token_api(make_client, settings):
    # The default setting (as the original HAT): Rumpel and HAT apps run on other origins.
    assert load(environ={}).cors_origins == ("*",)
    client = await make_client(cors_origins="*")
    origin = "https://rumpel.example"
    preflight = await client.options(
        "/users/access_token",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "username, password"},
    )  # fmt: skip
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    response = await client.get(
        "/users/access_token", headers={"Origin": origin, "username": OWNER[0], "password": OWNER[1]}
    )
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "Link" in response.headers["Access-Control-Expose-Headers"]
    # No response ever lets the browser send cookies along (the API never reads them anyway).
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Access-Control-Allow-Credentials" not in preflight.headers


@pytest.mark.parametrize("path", ["/owner", "/owner/login", "/hatlogin?name=x&redirect=https://s.example/", "/"])
async def test_the_owners_pages_never_answer_another_origin(make_client, path):
    client = await make_client(cors_origins="*")
    origin = "https://evil.example"
    response = await client.get(path, headers={"Origin": origin}, allow_redirects=False)
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = await client.options(
        path.split("?")[0], headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status != 204
    assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_unexpected_failure_is_a_500_that_reveals_nothing(client, owner_token, monkeypatch):
    from hatd.accounts import repository

    async def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(repository, "list_accounts", broken)
    with expect_undocumented(client, 500):  # a bug's 500 is no documented answer
        body = await _error(await client.get("/users/user", headers=auth(owner_token)), 500)
    assert body == {"message": "Internal server error", "cause": "An unexpected error occurred; it has been logged"}


async def test_head_goes_through_the_same_checks_as_get(client, owner_token):
    assert (await client.head("/users/user")).status == 401
    response = await client.head("/users/user", headers=auth(owner_token))
    assert response.status == 200
    assert (await client.head("/publickey")).status == 200


@pytest.mark.parametrize(
    "raw",
    [
        b'{"email": "f@b.com", "pass": "pw", "name": "\\ud800", "role": "dataDebit"}',
        b'{"email": "f@b.com", "pass": "\\udfff", "name": "n", "role": "dataDebit"}',
    ],
    ids=["lone-surrogate-name", "lone-surrogate-pass"],
)
async def test_lone_surrogates_are_400_not_500(client, owner_token, raw):
    response = await client.post(
        "/users/user", data=raw, headers={**auth(owner_token), "Content-Type": "application/json"}
    )
    assert await _error(response, 400) == {
        "message": "Invalid request",
        "cause": "The body holds a lone UTF-16 surrogate (\\uD800-\\uDFFF), which text cannot hold",
    }
    assert await _account_count(client, owner_token) == 2


async def test_a_surrogate_pair_is_ordinary_text(client, owner_token):
    raw = b'{"email": "e@b.com", "pass": "pw", "name": "smile \\ud83d\\ude00", "role": "dataDebit"}'
    response = await client.post(
        "/users/user", data=raw, headers={**auth(owner_token), "Content-Type": "application/json"}
    )
    assert response.status == 201
    assert (await response.json())["name"] == "smile \U0001f600"


async def test_deeply_nested_json_is_400_not_500(client, owner_token):
    raw = b'{"email": "f@b.com", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await client.post(
        "/users/user", data=raw, headers={**auth(owner_token), "Content-Type": "application/json"}
    )
    assert await _error(response, 400) == {"message": "Malformed JSON", "cause": "The body nests too deep"}


async def test_credentials_that_are_not_utf8_are_401_not_500(client):
    # Raw bytes on the wire: aiohttp's client would not send a header that is not UTF-8.
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        b"GET /users/access_token HTTP/1.1\r\nHost: hat\r\nusername: \xe9\r\npassword: pw\r\nConnection: close\r\n\r\n"
    )
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 ")
    assert json.loads(body)["cause"] == "Wrong username or password"


async def test_accept_is_case_insensitive(client, owner_token):
    response = await client.get("/users/user", headers={**auth(owner_token), "Accept": "APPLICATION/JSON"})
    assert response.status == 200
