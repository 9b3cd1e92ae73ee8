"""Getting, validating and verifying access tokens (seed 002, "Authentication")."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.conftest import OWNER, PLATFORM, auth, login, new_account


async def test_access_token_with_headers_is_an_rs256_jwt_that_publickey_verifies(client):
    response = await client.get("/users/access_token", headers={"username": OWNER[0], "password": OWNER[1]})
    assert response.status == 200
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"accessToken", "userId"}

    pem_response = await client.get("/publickey")
    assert pem_response.status == 200
    assert pem_response.content_type == "text/plain"
    pem = await pem_response.text()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in pem

    header = jwt.get_unverified_header(body["accessToken"])
    assert header["alg"] == "RS256"
    assert header["kid"]
    claims = jwt.decode(body["accessToken"], pem, algorithms=["RS256"], issuer="hat.test")
    now = time.time()
    assert claims["sub"] == body["userId"]
    assert claims["resource"] == "hat.test"
    assert claims["accessScope"] == "owner"
    assert abs(claims["iat"] - now) < 60
    assert claims["exp"] - claims["iat"] == 7200
    assert len(claims["jti"]) == 36


async def test_each_token_has_its_own_jti(client):
    first, second = await login(client, *OWNER), await login(client, *OWNER)
    assert (
        jwt.decode(first, options={"verify_signature": False})["jti"]
        != jwt.decode(second, options={"verify_signature": False})["jti"]
    )


@pytest.mark.parametrize(
    ("path", "where", "password_name", "username"),
    [
        ("/users/access_token", "query", "password", OWNER[0]),
        ("/users/access_token", "headers", "pass", OWNER[0]),
        ("/users/access_token", "query", "pass", OWNER[0]),
        ("/user/access_token", "headers", "password", OWNER[0]),
        ("/users/access_token", "headers", "password", "OWNER@HAT.TEST"),
        ("/users/access_token", "headers", "password", "owner"),
    ],
    ids=["query", "pass-header", "pass-query", "singular-path", "email-any-case", "by-name"],
)
async def test_access_token_accepts_every_documented_spelling(client, path, where, password_name, username):
    credentials = {"username": username, password_name: OWNER[1]}
    kwargs = {"params": credentials} if where == "query" else {"headers": credentials}
    response = await client.get(path, **kwargs)
    assert response.status == 200, await response.text()
    token = (await response.json())["accessToken"]
    assert (await client.get("/users/access_token/validate", headers=auth(token))).status == 200


async def test_platform_token_has_platform_scope(client):
    token = await login(client, *PLATFORM)
    assert jwt.decode(token, options={"verify_signature": False})["accessScope"] == "platform"


@pytest.mark.parametrize(
    ("headers", "cause"),
    [
        ({"username": OWNER[0], "password": "wrong"}, "Wrong username or password"),
        ({"username": "nobody@hat.test", "password": OWNER[1]}, "Wrong username or password"),
        (
            {"username": OWNER[0]},
            "Send the account's email (or name) and password as `username` and `password` headers",
        ),
        (
            {"password": OWNER[1]},
            "Send the account's email (or name) and password as `username` and `password` headers",
        ),
        ({"username": OWNER[0], "password": "x" * 200}, "Wrong username or password"),
    ],
    ids=["wrong-password", "unknown-user", "no-password", "no-username", "over-72-bytes"],
)
async def test_bad_credentials_get_401(client, headers, cause):
    response = await client.get("/users/access_token", headers=headers)
    assert response.status == 401
    assert await response.json() == {"message": "The supplied authentication is invalid", "cause": cause}


async def test_validate_answers_authenticated_for_every_role(client, owner_token):
    _, debit = await new_account(client, owner_token, role="dataDebit")
    _, credit = await new_account(client, owner_token, role="dataCredit")
    for token in (owner_token, debit, credit, await login(client, *PLATFORM)):
        response = await client.get("/users/access_token/validate", headers=auth(token))
        assert response.status == 200
        assert await response.json() == {"message": "Authenticated"}


@pytest.mark.parametrize("spelling", ["header-lower", "query", "query-access_token", "singular-path"])
async def test_token_travels_in_any_documented_way(client, owner_token, spelling):
    path, kwargs = "/users/access_token/validate", {}
    if spelling == "header-lower":
        kwargs = {"headers": {"x-auth-token": owner_token}}
    elif spelling == "query":
        kwargs = {"params": {"X-Auth-Token": owner_token}}
    elif spelling == "query-access_token":
        kwargs = {"params": {"access_token": owner_token}}
    else:
        path, kwargs = "/user/access_token/validate", {"headers": auth(owner_token)}
    response = await client.get(path, **kwargs)
    assert response.status == 200
    assert await response.json() == {"message": "Authenticated"}


async def test_validate_without_token_is_401(client):
    response = await client.get("/users/access_token/validate")
    assert response.status == 401
    assert await response.json() == {
        "message": "The supplied authentication is invalid",
        "cause": "No X-Auth-Token header or query parameter",
    }


async def test_failed_logins_limit_the_username_across_clients(make_client):
    # Failures cost the account tokens from a bucket 5 x login_burst; other clients then wait too.
    client = await make_client(login_burst=2, login_refill_seconds=60)
    from hatd.state import LOGIN_THROTTLE

    clients = client.app[LOGIN_THROTTLE].clients
    for attempt in range(10):
        # a fresh client address each time: only the per-username bucket can stop them
        clients._buckets.clear()
        response = await client.get("/users/access_token", headers={"username": OWNER[0], "password": "wrong"})
        assert response.status == 401, attempt
    clients._buckets.clear()
    # by name or by email: one account, one bucket
    response = await client.get("/users/access_token", headers={"username": "owner", "password": OWNER[1]})
    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1
    body = await response.json()
    assert body["message"] == "Too many requests"
    assert body["cause"].startswith("Too many login attempts; try again in")


async def test_one_client_cannot_lock_the_owner_out(make_client):
    # One client failing as fast as it may (its own bucket) never empties the owner's bucket,
    # which is larger and refills faster: another client still logs in.
    client = await make_client(login_burst=3, login_refill_seconds=0.05)
    from hatd.state import LOGIN_THROTTLE

    refused = 0
    for _ in range(40):
        response = await client.get("/users/access_token", headers={"username": OWNER[0], "password": "wrong"})
        refused += response.status == 429
    assert refused > 0  # the attacker was slowed by its own bucket
    client.app[LOGIN_THROTTLE].clients._buckets.clear()  # the owner, from another address
    assert await login(client, *OWNER)


async def test_login_rate_limit_per_client_spans_usernames(make_client):
    client = await make_client(login_burst=2, login_refill_seconds=60)
    for number in range(2):
        response = await client.get("/users/access_token", headers={"username": f"u{number}", "password": "x"})
        assert response.status == 401
    response = await client.get("/users/access_token", headers={"username": "someone-else", "password": "x"})
    assert response.status == 429


async def test_token_ttl_setting_sets_the_lifetime(make_client):
    client = await make_client(token_ttl=1)
    token = await login(client, *OWNER)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 1


async def test_iss_is_the_bare_host_and_tokens_of_the_full_address_still_pass(client, owner_token):
    # The original's clients fetch the key at <protocol>://<iss>/publickey, so iss is the bare host.
    claims = jwt.decode(owner_token, options={"verify_signature": False})
    assert (claims["iss"], claims["resource"]) == ("hat.test", "hat.test")
    # Tokens hatd signed before with its full address (iss and resource) pass until they expire.
    from hatd.state import TOKENS

    signer = client.app[TOKENS]
    earlier = {**claims, "iss": "http://hat.test", "resource": "http://hat.test"}
    token = jwt.encode(earlier, signer.keys.private_pem, algorithm="RS256", headers={"kid": signer.keys.kid})
    response = await client.get("/users/access_token/validate", headers={"X-Auth-Token": token})
    assert response.status == 200, await response.text()
    # Another address still names another HAT.
    foreign = {**claims, "iss": "https://hat.test", "resource": "https://hat.test"}
    token = jwt.encode(foreign, signer.keys.private_pem, algorithm="RS256", headers={"kid": signer.keys.kid})
    response = await client.get("/users/access_token/validate", headers={"X-Auth-Token": token})
    assert response.status == 401
