"""Tokens the middleware must refuse: forged, altered, expired, foreign, or whose account is
gone or disabled."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest

from hatd.tokens import TokenService, generate_key_pair
from tests.conftest import auth, login, new_account

INVALID = "The supplied authentication is invalid"


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def _refused(client, token: str) -> str:
    response = await client.get("/users/access_token/validate", headers=auth(token))
    assert response.status == 401, await response.text()
    body = await response.json()
    assert body["message"] == INVALID
    return body["cause"]


async def test_alg_none_is_refused(client, owner_token):
    forged = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(owner_token))}."
    assert await _refused(client, forged) == "Tokens must be signed with RS256, not 'none'"


async def test_hs256_signed_with_the_public_key_is_refused(client, owner_token):
    pem = await (await client.get("/publickey")).text()
    header = _b64({"alg": "HS256", "typ": "JWT"})
    payload = _b64(_claims(owner_token))
    signature = hmac.new(pem.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{_b64(signature)}"
    assert await _refused(client, forged) == "Tokens must be signed with RS256, not 'HS256'"


async def test_altered_claims_break_the_signature(client, owner_token, platform_token):
    header, _, signature = owner_token.split(".")
    claims = _claims(platform_token) | {"accessScope": "owner"}
    forged = f"{header}.{_b64(claims)}.{signature}"
    assert await _refused(client, forged) == "The token's signature does not match this HAT's key"


async def test_token_signed_by_another_key_is_refused(client, owner_token):
    other = TokenService(generate_key_pair(), issuer="http://hat.test", ttl=60)
    forged = other.issue(_claims(owner_token)["sub"], "owner")
    assert await _refused(client, forged) == "The token was signed with a key this HAT does not have"


async def test_token_signed_by_another_key_without_kid_is_refused(client, owner_token):
    other = generate_key_pair()
    claims = _claims(owner_token)
    forged = jwt.encode(claims, other.private_pem, algorithm="RS256")
    assert await _refused(client, forged) == "The token's signature does not match this HAT's key"


def _hat_signer(client) -> TokenService:
    from hatd.state import TOKENS

    return client.app[TOKENS]


async def test_expired_token_is_refused(client, owner_token):
    signer = _hat_signer(client)
    claims = _claims(owner_token) | {"iat": int(time.time()) - 7200, "exp": int(time.time()) - 120}
    expired = jwt.encode(claims, signer.keys.private_pem, algorithm="RS256", headers={"kid": signer.keys.kid})
    assert await _refused(client, expired) == "The token has expired"


async def test_token_of_another_hat_is_refused(client, owner_token):
    signer = _hat_signer(client)
    claims = _claims(owner_token) | {"iss": "http://other-hat.test", "resource": "http://other-hat.test"}
    foreign = jwt.encode(claims, signer.keys.private_pem, algorithm="RS256", headers={"kid": signer.keys.kid})
    assert await _refused(client, foreign) == "The token was issued by another HAT"


async def test_token_for_another_resource_is_refused(client, owner_token):
    signer = _hat_signer(client)
    other_resource = signer.issue(_claims(owner_token)["sub"], "owner", resource="https://app.example/callback")
    assert await _refused(client, other_resource) == (
        "The token is not for this HAT's API (its resource is another service)"
    )


async def test_login_with_hat_token_cannot_call_the_api(client, owner_token):
    signer = _hat_signer(client)
    validate_scope = signer.issue(_claims(owner_token)["sub"], "validate")
    assert await _refused(client, validate_scope) == "A login token proves identity only; it cannot call the API"


async def test_token_of_unknown_account_is_refused(client):
    signer = _hat_signer(client)
    assert await _refused(client, signer.issue(str(uuid.uuid4()), "owner")) == "The token's account does not exist"
    assert await _refused(client, signer.issue("not-a-uuid", "owner")) == "The token's account does not exist"


async def test_role_claim_must_match_the_account(client, owner_token):
    signer = _hat_signer(client)
    account, _ = await new_account(client, owner_token, role="dataDebit")
    promoted = signer.issue(account["userId"], "owner")
    assert await _refused(client, promoted) == "The token's role is not its account's role"


async def test_missing_claims_are_refused(client, owner_token):
    signer = _hat_signer(client)
    claims = _claims(owner_token)
    del claims["accessScope"]
    token = jwt.encode(claims, signer.keys.private_pem, algorithm="RS256", headers={"kid": signer.keys.kid})
    assert await _refused(client, token) == "The token has no 'accessScope' claim"


@pytest.mark.parametrize("garbage", ["abc", "a.b.c", "", "eyJhbGciOiJSUzI1NiJ9..", "x" * 5000])
async def test_garbage_tokens_are_401_not_500(client, garbage):
    response = await client.get("/users/access_token/validate", headers={"X-Auth-Token": garbage})
    assert response.status == 401
    assert (await response.json())["message"] == INVALID


async def test_disabling_an_account_revokes_its_issued_tokens_at_once(client, owner_token):
    account, token = await new_account(client, owner_token, role="dataCredit")
    assert (await client.get("/users/access_token/validate", headers=auth(token))).status == 200
    response = await client.put(f"/users/user/{account['userId']}/disable", headers=auth(owner_token))
    assert response.status == 200
    assert await _refused(client, token) == "The token's account is disabled"
    relogin = await client.get(
        "/users/access_token", headers={"username": account["email"], "password": "app-password"}
    )
    assert relogin.status == 401
    assert (await relogin.json())["cause"] == "This account is disabled"
    response = await client.put(f"/users/user/{account['userId']}/enable", headers=auth(owner_token))
    assert response.status == 200
    assert (await client.get("/users/access_token/validate", headers=auth(token))).status == 200
    assert await login(client, account["email"], "app-password")


async def test_token_is_refused_by_a_hat_at_another_address(make_client, owner_token):
    # Same database and key, another HAT address: the token names another issuer.
    other = await make_client(hat_address="http://other.test")
    response = await other.get("/users/access_token/validate", headers=auth(owner_token))
    assert response.status == 401
    assert (await response.json())["cause"] == "The token was issued by another HAT"
