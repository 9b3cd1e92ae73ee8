"""Many addresses cannot lock the owner out: a client that has logged in before (its device
cookie, or an earlier access token) gets in while strangers' guesses are refused, and bcrypt
work is bounded so that guesses cannot starve the owner's login."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid

import jwt
import pytest

from hatd.accounts import devices, passwords
from hatd.accounts.bootstrap import set_password
from hatd.state import POOL, TOKENS
from tests.conftest import OWNER, PLATFORM, auth, new_account
from tests.web_helpers import LOGIN_COOKIE, hidden_fields, page_login

DEVICE_COOKIE = LOGIN_COOKIE.replace("hatd_login_", "hatd_device_")
# 2 attempts per address; the owner account's bucket holds 10 failures; nothing refills meanwhile.
LIMITS = {"login_burst": 2, "login_refill_seconds": 1000, "trusted_proxies": "127.0.0.1"}


async def _api_login(client, password, address, **headers):
    headers = {"username": OWNER[0], "password": password, "X-Forwarded-For": address, **headers}
    return await client.get("/users/access_token", headers=headers)


async def _lock_the_owner_out(client):
    """Strangers from five addresses spend the owner account's whole failure bucket."""
    statuses = [(await _api_login(client, "guess", f"203.0.113.{n}")).status for n in range(5) for _ in range(2)]
    assert statuses == [401] * 10
    fresh = await _api_login(client, OWNER[1], "198.51.100.1")  # the right password, from a new client
    assert fresh.status == 429 and "Retry-After" in fresh.headers


async def test_the_owners_device_cookie_gets_in_while_strangers_are_locked_out(make_client):
    client = await make_client(**LIMITS)
    first = await _api_login(client, OWNER[1], "198.51.100.9")
    assert first.status == 200
    cookie = first.cookies[DEVICE_COOKIE]
    assert cookie["httponly"] and cookie["max-age"] == str(devices.DEVICE_TTL)
    client.session.cookie_jar.clear()
    await _lock_the_owner_out(client)
    client.session.cookie_jar.update_cookies({DEVICE_COOKIE: cookie.value})
    again = await _api_login(client, OWNER[1], "203.0.113.1")  # even from an attacker's address
    assert again.status == 200
    client.session.cookie_jar.clear()
    assert (await _api_login(client, "guess", "203.0.113.77")).status == 429  # strangers still fail


async def test_over_https_the_device_cookie_is_secure_and_bound_to_the_host(make_client):
    client = await make_client(hat_address="https://hat.test")
    response = await client.get("/users/access_token", headers={"username": OWNER[0], "password": OWNER[1]})
    [name] = [name for name in response.cookies if "hatd_device_" in name]
    assert name.startswith("__Host-hatd_device_") and response.cookies[name]["secure"]


async def test_a_client_without_cookies_presents_its_earlier_token_even_expired(make_client):
    client = await make_client(**LIMITS)
    owner_id = (await (await _api_login(client, OWNER[1], "198.51.100.9")).json())["userId"]
    client.session.cookie_jar.clear()
    await _lock_the_owner_out(client)
    now = int(time.time())
    claims = {"iss": "http://hat.test", "sub": owner_id, "resource": "http://hat.test", "accessScope": "owner",
              "iat": now - 86400, "exp": now - 79200, "jti": str(uuid.uuid4())}  # fmt: skip
    tokens = client.app[TOKENS]
    expired = jwt.encode(claims, tokens.keys.private_pem, algorithm="RS256", headers={"kid": tokens.keys.kid})
    response = await _api_login(client, OWNER[1], "203.0.113.1", **auth(expired))
    assert response.status == 200
    # Too old, forged, or another account's: a stranger's attempt like any other.
    too_old = jwt.encode({**claims, "iat": now - devices.DEVICE_TTL - 60}, tokens.keys.private_pem, algorithm="RS256")
    forged = jwt.encode(claims, "not this HAT's key, but long enough for HS256", algorithm="HS256")
    for token in (too_old, forged, "garbage"):
        client.session.cookie_jar.clear()
        assert (await _api_login(client, OWNER[1], "198.51.100.2", **auth(token))).status == 429


async def test_another_accounts_token_or_cookie_is_no_device_of_the_owner(make_client, owner_token):
    client = await make_client(**LIMITS)
    account, app_token = await new_account(client, owner_token)
    client.session.cookie_jar.clear()
    await _lock_the_owner_out(client)
    assert (await _api_login(client, OWNER[1], "198.51.100.3", **auth(app_token))).status == 429
    cookie = devices.issue(client.app[TOKENS].keys.private_pem, account["userId"], passwords.NO_PASSWORD)
    client.session.cookie_jar.update_cookies({DEVICE_COOKIE: cookie})
    assert (await _api_login(client, OWNER[1], "198.51.100.4")).status == 429


async def test_a_device_has_its_own_small_bucket_of_failures(make_client):
    client = await make_client(**LIMITS)
    assert (await _api_login(client, OWNER[1], "198.51.100.9")).status == 200  # the jar keeps the cookie
    assert [(await _api_login(client, "guess", "198.51.100.9")).status for _ in range(3)] == [401, 401, 429]


async def test_the_browser_the_owner_logged_in_from_gets_in_while_strangers_are_locked_out(make_client):
    client = await make_client(**LIMITS)
    assert (await page_login(client)).status == 303
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[DEVICE_COOKIE].value
    client.session.cookie_jar.clear()
    await _lock_the_owner_out(client)
    assert (await page_login(client)).status == 429  # a browser the owner never used
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({DEVICE_COOKIE: cookie})
    assert (await page_login(client)).status == 303


async def test_guesses_fill_their_lane_and_are_refused_while_the_owner_gets_in(make_client, monkeypatch):
    """The shared bcrypt lane is full of strangers' checks (held here until the end): one more is
    refused at once, 429, rather than queued, and the owner's device still logs in meanwhile."""
    release = threading.Event()
    check = passwords._check

    def held(password: str, hashed: str) -> bool:
        if password == "held":
            release.wait(10)
        return check(password, hashed)

    monkeypatch.setattr(passwords, "_check", held)
    monkeypatch.setattr(
        passwords.Lanes, "create",
        classmethod(lambda cls: cls(trusted=passwords.Lane("t", workers=1, waiting=0),
                                    shared=passwords.Lane("s", workers=1, waiting=1))),
    )  # fmt: skip
    client = await make_client(trusted_proxies="127.0.0.1")
    assert (await _api_login(client, OWNER[1], "198.51.100.9")).status == 200
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[DEVICE_COOKIE].value
    client.session.cookie_jar.clear()
    stuck = [asyncio.ensure_future(_api_login(client, "held", f"203.0.113.{n}")) for n in range(2)]
    try:
        await asyncio.sleep(0.2)
        refused = await asyncio.wait_for(_api_login(client, "guess", "203.0.113.9"), 5)
        assert refused.status == 429 and refused.headers["Retry-After"] == "1"
        client.session.cookie_jar.update_cookies({DEVICE_COOKIE: cookie})
        owner = await asyncio.wait_for(_api_login(client, OWNER[1], "203.0.113.10"), 5)
        assert owner.status == 200
        # The owner's page login takes the same trusted lane.
        form = hidden_fields(await (await client.get("/owner/login")).text())
        page = await asyncio.wait_for(
            client.post("/owner/login", data={**form, "password": OWNER[1]}, allow_redirects=False), 5
        )
        assert page.status == 303
    finally:
        release.set()
    assert [r.status for r in await asyncio.gather(*stuck)] == [401, 401]


def _hold(monkeypatch, password: str) -> threading.Event:
    """Checks of `password` wait (as a slow bcrypt would) until the returned event is set."""
    release = threading.Event()
    check = passwords._check

    def held(given: str, hashed: str) -> bool:
        if given == password:
            release.wait(10)
        return check(given, hashed)

    monkeypatch.setattr(passwords, "_check", held)
    return release


async def test_another_account_cannot_fill_the_owners_trusted_lane(make_client, monkeypatch):
    """The platform account (or any an app holds) keeps five correct logins in flight with its own
    device cookie: they are no device of the owner's, so the owner's device still gets in."""
    release = _hold(monkeypatch, PLATFORM[1])
    client = await make_client(trusted_proxies="127.0.0.1")
    assert (await _api_login(client, OWNER[1], "198.51.100.9")).status == 200
    owner_cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[DEVICE_COOKIE].value
    client.session.cookie_jar.clear()
    release.set()
    platform = {"username": PLATFORM[0], "password": PLATFORM[1]}
    first = await client.get("/users/access_token", headers=platform)
    assert first.status == 200 and DEVICE_COOKIE not in first.cookies  # no device of its own
    release.clear()
    platform_hash = await client.app[POOL].fetchval("SELECT pass_hash FROM accounts WHERE role = 'platform'")
    forged = devices.issue(client.app[TOKENS].keys.private_pem, (await first.json())["userId"], platform_hash)
    client.session.cookie_jar.update_cookies({DEVICE_COOKIE: forged})
    stuck = [asyncio.ensure_future(client.get("/users/access_token", headers=platform)) for _ in range(5)]
    try:
        await asyncio.sleep(0.3)
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({DEVICE_COOKIE: owner_cookie})
        owner = await asyncio.wait_for(_api_login(client, OWNER[1], "198.51.100.1"), 5)
        assert owner.status == 200
    finally:
        release.set()
    assert [r.status for r in await asyncio.gather(*stuck)] == [200] * 5


async def test_a_device_has_one_check_at_a_time_and_every_attempt_counts(make_client, monkeypatch):
    release = _hold(monkeypatch, "held")
    client = await make_client(**LIMITS)  # a device's bucket holds 2 attempts
    assert (await _api_login(client, OWNER[1], "198.51.100.9")).status == 200
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[DEVICE_COOKIE].value

    async def with_the_cookie(password: str):  # the same device each time (a success sets a new one)
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({DEVICE_COOKIE: cookie})
        return await _api_login(client, password, "198.51.100.9")

    stuck = asyncio.ensure_future(with_the_cookie("held"))
    try:
        await asyncio.sleep(0.2)
        second = await asyncio.wait_for(with_the_cookie(OWNER[1]), 5)
        assert second.status == 429 and second.headers["Retry-After"] == "1"
    finally:
        release.set()
    assert (await stuck).status == 401
    # The refused attempt took nothing; the held one took a token, this success the other.
    assert (await with_the_cookie(OWNER[1])).status == 200
    assert (await with_the_cookie(OWNER[1])).status == 429


def test_a_device_cookie_is_bound_to_its_account_key_password_and_time():
    key = "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----"
    cookie = devices.issue(key, "u1", "$2b$12$hash", now=1000)
    assert devices.verify(key, cookie, "u1", "$2b$12$hash", now=1000) is not None
    assert devices.verify(key, cookie, "u2", "$2b$12$hash", now=1000) is None
    assert devices.verify(key + "x", cookie, "u1", "$2b$12$hash", now=1000) is None
    assert devices.verify(key, cookie, "u1", "$2b$12$new-hash", now=1000) is None
    assert devices.verify(key, cookie, "u1", "$2b$12$hash", now=1000 + devices.DEVICE_TTL + 1) is None
    payload, _, mac = cookie.rpartition(".")
    assert devices.verify(key, payload.replace("u1", "u2") + "." + mac, "u2", "$2b$12$hash", now=1000) is None


@pytest.mark.parametrize("value", ["", ".", "a.b.c.d", "x" * 500])
def test_odd_device_cookies_are_no_device(value):
    assert devices.verify("key", value, "u1", "hash") is None


async def test_a_new_password_ends_the_device_cookies_issued_before_it(make_client):
    client = await make_client(**LIMITS)
    assert (await _api_login(client, OWNER[1], "198.51.100.9")).status == 200
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[DEVICE_COOKIE].value
    client.session.cookie_jar.clear()
    await _lock_the_owner_out(client)
    async with client.app[POOL].acquire() as conn:
        await set_password(conn, "owner", "a-new-owner-password", 4)
    client.session.cookie_jar.update_cookies({DEVICE_COOKIE: cookie})
    # The old cookie is no device any more: a stranger's attempt, refused while the owner is locked out.
    assert (await _api_login(client, "a-new-owner-password", "198.51.100.9")).status == 429


async def test_a_token_given_to_an_approved_service_is_no_device_of_the_owner(make_client):
    client = await make_client(**LIMITS)
    owner_id = (await (await _api_login(client, OWNER[1], "198.51.100.9")).json())["userId"]
    client.session.cookie_jar.clear()
    await _lock_the_owner_out(client)
    tokens = client.app[TOKENS]
    service = tokens.issue(owner_id, "owner", approval=str(uuid.uuid4()))  # as /hatlogin gives one
    assert (await _api_login(client, OWNER[1], "203.0.113.1", **auth(service))).status == 429
    assert (await _api_login(client, OWNER[1], "203.0.113.1", **auth(tokens.issue(owner_id, "owner")))).status == 200


def test_strangers_checks_run_at_a_lower_cpu_priority():
    lanes = passwords.Lanes.create()
    try:

        def nice() -> int:
            return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

        own = nice()
        assert lanes.shared._executor.submit(nice).result() == min(own + 10, 19)
        assert lanes.trusted._executor.submit(nice).result() == own
    finally:
        lanes.close()
