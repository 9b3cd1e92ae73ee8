"""Tokens and accounts: log in, validate a token, the public key, create and list accounts,
enable and disable them. Seed 002, "Authentication" and "User Management"."""

from __future__ import annotations

import uuid

from aiohttp import web

from hatd import db
from hatd.accounts import login, passwords, repository
from hatd.accounts.schemas import (
    AccessTokenSchema,
    AccountSchema,
    AccountStateSchema,
    ApplicationTokenQuerySchema,
    MessageSchema,
    NewAccountSchema,
)
from hatd.errors import Forbidden, Unauthorized
from hatd.http import json_response, json_text, parse_body, parse_query, storable
from hatd.roles import ALL_ROLES, OWNER, PLATFORM
from hatd.routing import PUBLIC, USER_ID, Route
from hatd.state import CALLER, CALLERS, POOL, SETTINGS, TOKENS
from hatd.tokens import VALIDATE_SCOPE

ACCOUNT_ADMINS = frozenset({OWNER, PLATFORM})
USER_ID_PATH = f"/users/user/{USER_ID}"


def _credential(request: web.Request, *names: str) -> str | None:
    for source in (request.headers, request.query):
        for name in names:
            value = source.get(name)
            if value:
                return value
    return None


async def access_token(request: web.Request) -> web.Response:
    username = _credential(request, "username")
    password = _credential(request, "password", "pass")
    if not username or not password:
        raise Unauthorized("Send the account's email (or name) and password as `username` and `password` headers")
    if not storable(username) or not storable(password):  # no account has such a name or password
        raise Unauthorized("Wrong username or password")
    cause = "Too many login attempts; try again in {seconds} s"
    login.refuse_early(request, page=False, cause=cause)
    account = await repository.find_login(request.app[POOL], username)
    matched = await login.check(request, account, password, name=username, page=False, cause=cause)
    if not matched:
        raise Unauthorized("Wrong username or password")
    assert account is not None
    if not account["enabled"]:
        raise Unauthorized("This account is disabled")
    user_id = str(account["user_id"])
    token = request.app[TOKENS].issue(user_id, account["role"])
    response = json_response({"accessToken": token, "userId": user_id})
    login.remember_device(request, response, account)
    return response


async def application_token(request: web.Request) -> web.Response:
    """A token for the owner to hand to a service (a data plug, a market): it proves who the owner
    is to that service (`resource`) and calls no API route, as a Login-with-HAT token."""
    query = parse_query(request, ApplicationTokenQuerySchema)
    caller = request[CALLER]
    token = request.app[TOKENS].issue(caller.user_id, VALIDATE_SCOPE, resource=query["resource"])
    return json_response({"accessToken": token, "userId": caller.user_id})


async def validate_token(request: web.Request) -> web.Response:
    # The auth middleware has checked the token by the time this runs.
    return json_response({"message": "Authenticated"})


async def public_key(request: web.Request) -> web.Response:
    return web.Response(text=request.app[TOKENS].keys.public_pem, content_type="text/plain")


def _not_a_service(request: web.Request) -> None:
    """Accounts are the owner's (or the platform's) to manage, never a service's acting as the owner:
    an account it made would outlive the approval it was made under."""
    if request[CALLER].approval is not None:
        raise Forbidden("An approved service may not manage accounts; the owner does, with their own token")


async def create_account(request: web.Request) -> web.Response:
    _not_a_service(request)
    new = await parse_body(request, NewAccountSchema)
    password: str = new["password"]
    if not passwords.is_bcrypt_hash(password):  # the schema has checked a hash's cost
        password = await passwords.hash_password(password, request.app[SETTINGS].bcrypt_rounds)
    async with db.transaction(request.app[POOL]) as conn:
        body = await repository.create_account(
            conn, user_id=new["userId"], email=new["email"], name=new["name"], pass_hash=password, role=new["role"]
        )
    return json_text(body, status=201)


async def list_accounts(request: web.Request) -> web.Response:
    return json_text(await repository.list_accounts(request.app[POOL]))


async def _set_enabled(request: web.Request, enabled: bool) -> web.Response:
    _not_a_service(request)
    # The route admits only the 8-4-4-4-12 hex form; the answer gives it in lower case.
    user_id = uuid.UUID(request.match_info["userId"])
    async with request.app[CALLERS].changing(request.app[POOL]) as conn:
        await repository.set_enabled(conn, user_id, enabled)
    return json_response({"message": "OK", "userId": str(user_id), "enabled": enabled})


async def enable_account(request: web.Request) -> web.Response:
    return await _set_enabled(request, True)


async def disable_account(request: web.Request) -> web.Response:
    return await _set_enabled(request, False)


CREDENTIAL_HEADERS = {
    "username": "The account's email (or its name); also a query parameter",
    "password": "The account's password (also spelt `pass`, as the spec's table does); also a query parameter",
}

ROUTES = [
    Route(
        "GET", "/users/access_token", access_token, name="access_token", roles=PUBLIC,
        aliases=("/user/access_token",), headers=CREDENTIAL_HEADERS, response=AccessTokenSchema, errors=(401, 429),
        summary="Log in: trade a username and password for an access token",
        description="The spec's prose says /user/access_token and its request line /users/access_token: "
        "both are served. Rate-limited per client and per username (429 with Retry-After). A client that "
        "has logged in before proves it with the device cookie a login sets, or with an earlier access token "
        "of the account (expired or not) in X-Auth-Token: only its own failures limit it then.",
    ),
    Route(
        "GET", "/users/access_token/validate", validate_token, name="validate_token", roles=ALL_ROLES,
        aliases=("/user/access_token/validate",), response=MessageSchema,
        summary="Check that a token is valid for this HAT",
    ),
    Route(
        "GET", "/users/application_token", application_token, name="application_token", roles=frozenset({OWNER}),
        query=ApplicationTokenQuerySchema, response=AccessTokenSchema,
        summary="A token for a service the owner uses (accessScope validate, resource = the service's address)",
        description="The original's call (Rumpel opens data plugs and its market with it). The token proves who "
        "the owner is to that service and calls no API route; it lives HATD_TOKEN_TTL.",
    ),
    Route(
        "GET", "/publickey", public_key, name="public_key", roles=PUBLIC, produces="text/plain", negotiated=False,
        summary="The HAT's public key (PEM), to verify its RS256 tokens offline",
        description="Answered as text/plain whatever the Accept header says: the original's clients fetch it "
        "with HTTP libraries that send `Accept: application/json` on every request.",
    ),
    Route(
        "POST", "/users/user", create_account, name="create_account", roles=ACCOUNT_ADMINS,
        body=NewAccountSchema, response=AccountSchema, status=201, errors=(409,),
        description="`pass` is a bcrypt hash (cost 10 to 14) or a plain password, which the HAT hashes.",
        summary="Create a dataDebit or dataCredit account",
    ),
    Route(
        "GET", "/users/user", list_accounts, name="list_accounts", roles=ACCOUNT_ADMINS,
        response=AccountSchema, many=True, summary="List the HAT's accounts (never their password hashes)",
    ),
    Route(
        "PUT", USER_ID_PATH + "/enable", enable_account, name="enable_account", roles=ACCOUNT_ADMINS,
        response=AccountStateSchema, summary="Enable an account",
    ),
    Route(
        "PUT", USER_ID_PATH + "/disable", disable_account, name="disable_account", roles=ACCOUNT_ADMINS,
        response=AccountStateSchema,
        summary="Disable an account; its tokens stop working at once. The owner and platform cannot be disabled.",
    ),
]  # fmt: skip
