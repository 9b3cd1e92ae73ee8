"""Login with HAT (seed 002, the four steps) over HTTP: the login form, the service's icon, the
redirect with a token that proves identity only, and what is refused on the way."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from tests.conftest import auth
from tests.raw_helpers import KITCHEN, new_table
from tests.web_helpers import LOGIN_COOKIE, SESSION_COOKIE, hidden_fields, logged_in, page_login

SERVICE = {"name": "Rumpel Lite", "redirect": "https://service.example/path?keep=me&x=1"}


async def _approve(client, service=SERVICE):
    page = await client.get("/hatlogin", params=service)
    assert page.status == 200, await page.text()
    fields = hidden_fields(await page.text())
    return await client.post("/hatlogin", data=fields, allow_redirects=False)


async def test_without_a_session_hatlogin_shows_the_login_form(client):
    response = await client.get("/hatlogin", params=SERVICE)
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert 'type="password"' in page
    # After logging in the owner comes back to this very /hatlogin request.
    assert hidden_fields(page)["next"].startswith("/hatlogin?")
    cookie = response.cookies[LOGIN_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


async def test_the_four_steps_end_at_the_service_with_a_token_it_can_verify(client):
    hatlogin = "/hatlogin?" + "&".join(
        f"{k}={v}" for k, v in {"name": "Rumpel", "redirect": "https://s.example/cb"}.items()
    )
    response = await page_login(client, next_path=hatlogin)
    assert response.status == 303
    assert response.headers["Location"] == hatlogin
    session = response.cookies[SESSION_COOKIE]
    assert session["httponly"] and session["samesite"] == "Lax" and session["path"] == "/"

    page = await client.get(hatlogin)
    text = await page.text()
    assert page.status == 200
    assert '<strong class="name" id="service-name">Rumpel</strong>' in text
    assert '<span class="address" id="service-address">https://s.example/cb</span>' in text
    assert 'at <strong id="service-host">s.example</strong>' in text
    assert "form-action 'self' https://s.example;" in page.headers["Content-Security-Policy"]

    answer = await client.post("/hatlogin", data=hidden_fields(text), allow_redirects=False)
    assert answer.status == 303
    location = urlsplit(answer.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", "s.example", "/cb")
    token = parse_qs(location.query)["token"][0]

    public_key = await (await client.get("/publickey")).text()
    claims = jwt.decode(token, public_key, algorithms=["RS256"], issuer="hat.test")
    assert claims["accessScope"] == "validate"
    assert claims["resource"] == "https://s.example/cb"
    assert claims["exp"] - claims["iat"] == 86400
    assert abs(claims["iat"] - time.time()) < 60
    assert jwt.get_unverified_header(token)["alg"] == "RS256"


async def test_the_redirect_keeps_its_own_query_and_replaces_a_token_in_it(client):
    await logged_in(client)
    answer = await _approve(client, {"name": "S", "redirect": "https://s.example/p?keep=me&token=old&x=1"})
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["keep"] == ["me"] and query["x"] == ["1"]
    assert query["token"] != ["old"] and len(query["token"]) == 1


async def test_the_login_token_proves_identity_only(client, owner_token):
    kitchen = await new_table(client, owner_token, KITCHEN)
    await logged_in(client)
    answer = await _approve(client)
    token = parse_qs(urlsplit(answer.headers["Location"]).query)["token"][0]
    for method, path in [("GET", "/users/access_token/validate"), ("GET", "/data/sources"), ("GET", "/dataDebit"),
                         ("GET", f"/data/table/{kitchen['id']}"), ("GET", f"/data/table/{kitchen['id']}/values"),
                         ("POST", "/data/table"), ("GET", "/users/user"), ("GET", "/person"), ("GET", "/metrics"), ("GET", "/export")]:  # fmt: skip
        response = await client.request(method, path, headers=auth(token))
        assert response.status == 401, (path, response.status)
        cause = (await response.json())["cause"]
        assert "login token" in cause or "resource is another service" in cause, cause


async def test_the_login_token_lifetime_is_a_setting(make_client):
    client = await make_client(login_token_ttl=600)
    await logged_in(client)
    answer = await _approve(client)
    token = parse_qs(urlsplit(answer.headers["Location"]).query)["token"][0]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 600


@pytest.mark.parametrize(
    ("redirect", "reason"),
    [
        ("javascript:alert(1)", "must start with http:// or https://, not javascript:"),
        ("ftp://files.example/x", "must start with http:// or https://, not ftp:"),
        ("//service.example/path", "must start with http:// or https://, not no scheme"),
        ("service.example/path", "must start with http:// or https://, not no scheme"),
        ("https://", "has no host"),
        ("https://user:pw@evil.example/", "must not carry a user name or password"),
        ("https://exa mple.com/", "spaces or control characters"),
        ("https://example.com/\u0000", "NUL"),
        ("https://example.com:99999/", "not a well-formed URL"),
        ("http://[::1/", "not a well-formed URL"),
        ("https://example.com/" + "a" * 2100, "longer than 2048 characters"),
        ("https://example.com/" + "é" * 1000, "longer than 2048 characters once encoded"),
        ("https://a\\b.example/", "not a well-formed URL"),
        ("https://evil.example;sandbox/", "host is not a host name or an IP address"),
        ("https://evil.example%3Bsandbox/", "host is not a host name or an IP address"),
        ("https://a_b.example/", "host is not a host name or an IP address"),
        ("https://-a.example/", "host is not a host name or an IP address"),
        ("https://a..example/", "host is not a host name or an IP address"),
        ("http://[fe80::1%x;sandbox;]/cb", "host is not a host name or an IP address"),
        ("http://[fe80::1%25eth0]/cb", "host is not a host name or an IP address"),
        ("http://1.2.3.4.5/cb", "host is not a host name or an IP address"),
        ("http://0x7f.1/cb", "host is not a host name or an IP address"),
        ("http://example.0x10/cb", "host is not a host name or an IP address"),
    ],
)
async def test_a_bad_redirect_gets_a_page_saying_why_not_a_redirect(client, redirect, reason):
    for logged in (False, True):
        if logged:
            await logged_in(client)
        response = await client.get("/hatlogin", params={"name": "S", "redirect": redirect}, allow_redirects=False)
        assert response.status == 400
        assert "Location" not in response.headers
        assert response.content_type == "text/html"
        assert reason in await response.text()


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"redirect": "https://s.example/"}, "The app must name itself"),
        ({"name": "S"}, "The app must say where to return"),
        ({"name": "  ", "redirect": "https://s.example/"}, "The service name is empty"),
        ({"name": "a\u202eb", "redirect": "https://s.example/"}, "control characters"),
        ({"name": "n" * 101, "redirect": "https://s.example/"}, "Longer than maximum length 100"),
    ],
)
async def test_a_bad_service_name_gets_a_page_saying_why(client, params, reason):
    response = await client.get("/hatlogin", params=params)
    assert response.status == 400
    assert reason in await response.text()


async def test_the_service_name_is_shown_as_text_never_as_markup(client):
    await logged_in(client)
    name = '<script>alert("x")</script>'
    page = await client.get("/hatlogin", params={"name": name, "redirect": "https://s.example/"})
    text = await page.text()
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text


async def test_approving_needs_the_session_and_its_csrf_token(client, make_client):
    await logged_in(client)
    page = await client.get("/hatlogin", params=SERVICE)
    fields = hidden_fields(await page.text())
    for forged in ({**fields, "csrf": "x" * 43}, {k: v for k, v in fields.items() if k != "csrf"}):
        response = await client.post("/hatlogin", data=forged, allow_redirects=False)
        assert response.status == 403
        assert "Location" not in response.headers
    # Another browser (no session cookie) with the right form gets nothing either.
    stranger = await make_client()
    response = await stranger.post("/hatlogin", data=fields, allow_redirects=False)
    assert response.status == 403
    assert "log in again" in await response.text()


async def test_approving_checks_the_redirect_again(client):
    csrf = await logged_in(client)
    response = await client.post(
        "/hatlogin", data={"csrf": csrf, "name": "S", "redirect": "javascript:alert(1)"}, allow_redirects=False
    )
    assert response.status == 400
    assert "Location" not in response.headers


async def test_the_pages_cannot_be_framed_and_are_not_cached(client):
    await logged_in(client)
    for path in ("/hatlogin?name=S&redirect=https://s.example/", "/owner", "/owner/login", "/owner/debits"):
        response = await client.get(path)
        assert response.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], path
        assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'none' covers it
        assert response.headers["Cache-Control"] == "no-store", path


@pytest.mark.parametrize(
    "redirect",
    [
        "https://127.0.0.1:8443/cb",
        "https://[2001:db8::1]/cb",
        "https://[::ffff:1.2.3.4]/cb",
        "https://1x.example/cb",
        "https://bücher.example/cb",
        "http://localhost:3000/",
    ],
)
async def test_addresses_and_international_names_are_real_hosts(client, redirect):
    await logged_in(client)
    page = await client.get("/hatlogin", params={"name": "S", "redirect": redirect})
    assert page.status == 200, await page.text()
