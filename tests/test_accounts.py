"""Creating, listing, enabling and disabling accounts (seed 002, "User Management")."""

from __future__ import annotations

import uuid

import asyncpg
import bcrypt
import pytest

from tests.conftest import OWNER, PLATFORM, auth, login, new_account

# bcrypt of "old-password" at cost 15 (made once: it takes seconds).
OLD_PASSWORD_COST_15 = "$2b$15$uLJcWXF7fvqjsSMLTxnJMu2FkfI0jeNuptfjpzKoFtsJZSHB4/cxe"

SPEC_EXAMPLE = {
    "userId": "5974832d-2dc1-4f49-adf1-c6d8bc790275",
    "email": "apiClient@platform.com",
    # The spec: "pass is bcrypt salted hash of simplepass".
    "pass": "$2a$10$6YoHtQqSdit9zzVSzrkK7.E.JQuioFNAggTY7vZRL4RSeY.sUbUIu",
    "name": "apiclient.platform.com",
    "role": "dataDebit",
}


async def test_create_account_as_in_the_spec(client, owner_token):
    response = await client.post("/users/user", json=SPEC_EXAMPLE, headers=auth(owner_token))
    assert response.status == 201
    assert await response.json() == {
        "userId": "5974832d-2dc1-4f49-adf1-c6d8bc790275",
        "email": "apiClient@platform.com",
        "name": "apiclient.platform.com",
        "role": "dataDebit",
        "enabled": True,
    }
    # "Note that pass is bcrypt salted hash of simplepass": the hash is stored as given.
    token = await login(client, "apiclient@platform.com", "simplepass")
    assert (await client.get("/users/access_token/validate", headers=auth(token))).status == 200


@pytest.mark.parametrize("cost", ["04", "09", "15", "17", "31"])
async def test_a_bcrypt_hash_outside_costs_10_to_14_is_refused(client, owner_token, cost):
    """A cost-17 hash held the owner's login for a minute under 8 guesses; at 31 for days."""
    hashed = f"$2b${cost}$" + "a" * 53
    body = {"email": "costly@example.com", "pass": hashed, "name": "costly", "role": "dataCredit"}
    response = await client.post("/users/user", json=body, headers=auth(owner_token))
    assert response.status == 400
    assert await response.json() == {
        "message": "Invalid request",
        "cause": f"pass: a bcrypt hash must have a cost from 10 to 14, not {int(cost)}",
    }
    assert "costly" not in await (await client.get("/users/user", headers=auth(owner_token))).text()


async def test_a_stored_hash_above_cost_14_is_never_run(client, owner_token, database):
    """An account given a costly hash before the limit existed: bcrypt never runs it (its login
    fails at once) until it gets a new password."""
    await new_account(client, owner_token, number="old", **{"pass": "old-password"})
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("UPDATE accounts SET pass_hash = $1 WHERE name = 'appold'", OLD_PASSWORD_COST_15)
    finally:
        await conn.close()
    response = await client.get("/users/access_token", headers={"username": "appold", "password": "old-password"})
    assert response.status == 401


async def test_created_account_with_a_bcrypt_hash_logs_in_with_its_password(client, owner_token):
    hashed = bcrypt.hashpw(b"hashed-secret", bcrypt.gensalt(10)).decode()
    body = {"email": "hashed@example.com", "pass": hashed, "name": "hashed", "role": "dataCredit"}
    response = await client.post("/users/user", json=body, headers=auth(owner_token))
    assert response.status == 201
    token = await login(client, "hashed@example.com", "hashed-secret")
    assert (await client.get("/users/access_token/validate", headers=auth(token))).status == 200


async def test_plain_password_is_hashed_and_the_account_gets_a_server_made_id(client, owner_token):
    body = {"email": "plain@example.com", "password": "plain-secret", "name": "plain", "role": "dataDebit"}
    response = await client.post("/users/user", json=body, headers=auth(owner_token))
    assert response.status == 201
    account = await response.json()
    assert uuid.UUID(account["userId"])
    assert account == {
        "userId": account["userId"],
        "email": "plain@example.com",
        "name": "plain",
        "role": "dataDebit",
        "enabled": True,
    }
    assert await login(client, "plain@example.com", "plain-secret")
    assert await login(client, "plain", "plain-secret")


async def test_platform_creates_accounts_too(client, platform_token):
    account, token = await new_account(client, platform_token, role="dataCredit")
    assert account["role"] == "dataCredit"
    assert token


async def test_list_accounts_never_shows_password_hashes(client, owner_token):
    created, _ = await new_account(client, owner_token, role="dataDebit", number="list")
    response = await client.get("/users/user", headers=auth(owner_token))
    assert response.status == 200
    accounts = await response.json()
    assert [a["role"] for a in accounts] == ["owner", "platform", "dataDebit"]
    assert accounts[0] == {
        "userId": accounts[0]["userId"],
        "email": OWNER[0],
        "name": "owner",
        "role": "owner",
        "enabled": True,
    }
    assert accounts[2] == created
    text = await response.text()
    assert "$2" not in text
    assert "pass" not in text


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        ({"userId": "5974832d-2dc1-4f49-adf1-c6d8bc790275"}, "an account with this userId already exists"),
        ({"email": "APICLIENT@platform.com"}, "an account with this email already exists"),
        ({"name": "apiclient.platform.com"}, "an account with this name already exists"),
    ],
    ids=["userId", "email-any-case", "name"],
)
async def test_duplicates_are_409_and_change_nothing(client, owner_token, change, cause):
    assert (await client.post("/users/user", json=SPEC_EXAMPLE, headers=auth(owner_token))).status == 201
    duplicate = {
        "userId": str(uuid.uuid4()),
        "email": "other@example.com",
        "pass": "x-password",
        "name": "other",
        "role": "dataCredit",
        **change,
    }
    response = await client.post("/users/user", json=duplicate, headers=auth(owner_token))
    assert response.status == 409
    assert await response.json() == {"message": "Conflict", "cause": cause}
    listed = await (await client.get("/users/user", headers=auth(owner_token))).json()
    assert len(listed) == 3


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        ({**SPEC_EXAMPLE, "role": "owner"}, "role: Must be one of: dataDebit, dataCredit."),
        ({**SPEC_EXAMPLE, "role": "platform"}, "role: Must be one of: dataDebit, dataCredit."),
        ({**SPEC_EXAMPLE, "role": "admin"}, "role: Must be one of: dataDebit, dataCredit."),
        ({**SPEC_EXAMPLE, "email": "not-an-email"}, "email: Not a valid email address."),
        ({k: v for k, v in SPEC_EXAMPLE.items() if k != "pass"}, "pass: Missing data for required field."),
        ({**SPEC_EXAMPLE, "pass": ""}, "pass: must be 1 to 72 bytes long"),
        ({**SPEC_EXAMPLE, "pass": "p" * 73}, "pass: must be 1 to 72 bytes long"),
        ({**SPEC_EXAMPLE, "userId": "nope"}, "userId: Not a valid UUID."),
        ({**SPEC_EXAMPLE, "name": ""}, "name: Length must be between 1 and 200."),
        ({**SPEC_EXAMPLE, "name": 5}, "name: Not a valid string."),
    ],
    ids=[
        "owner",
        "platform",
        "unknown-role",
        "email",
        "no-pass",
        "empty-pass",
        "long-pass",
        "userId",
        "name",
        "name-type",
    ],
)
async def test_invalid_accounts_are_400_naming_the_field(client, owner_token, body, cause):
    response = await client.post("/users/user", json=body, headers=auth(owner_token))
    assert response.status == 400
    assert await response.json() == {"message": "Invalid request", "cause": cause}
    listed = await (await client.get("/users/user", headers=auth(owner_token))).json()
    assert len(listed) == 2


@pytest.mark.parametrize("role", ["dataDebit", "dataCredit"])
async def test_data_accounts_cannot_manage_accounts(client, owner_token, role):
    account, token = await new_account(client, owner_token, role=role)
    calls = [
        ("POST", "/users/user", {**SPEC_EXAMPLE}),
        ("GET", "/users/user", None),
        ("PUT", f"/users/user/{account['userId']}/disable", None),
        ("PUT", f"/users/user/{account['userId']}/enable", None),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body, headers=auth(token))
        assert response.status == 403, path
        assert await response.json() == {
            "message": "Forbidden",
            "cause": f"{method} {path.replace(account['userId'], '{userId}')} is for owner, platform; "
            f"this is a {role} token",
        }
    listed = await (await client.get("/users/user", headers=auth(owner_token))).json()
    assert [a["enabled"] for a in listed] == [True, True, True]


async def test_enable_and_disable(client, owner_token, platform_token):
    account, _ = await new_account(client, owner_token)
    response = await client.put(f"/users/user/{account['userId']}/disable", headers=auth(platform_token))
    assert response.status == 200
    assert await response.json() == {"message": "OK", "userId": account["userId"], "enabled": False}
    listed = await (await client.get("/users/user", headers=auth(owner_token))).json()
    assert listed[2]["enabled"] is False
    # Disabling twice, enabling twice: both fine.
    assert (await client.put(f"/users/user/{account['userId']}/disable", headers=auth(owner_token))).status == 200
    response = await client.put(f"/users/user/{account['userId']}/enable", headers=auth(owner_token))
    assert await response.json() == {"message": "OK", "userId": account["userId"], "enabled": True}
    assert (await client.put(f"/users/user/{account['userId']}/enable", headers=auth(owner_token))).status == 200


@pytest.mark.parametrize("who", [OWNER, PLATFORM], ids=["owner", "platform"])
async def test_owner_and_platform_can_never_be_disabled(client, owner_token, who):
    accounts = await (await client.get("/users/user", headers=auth(owner_token))).json()
    target = next(a for a in accounts if a["email"] == who[0])
    response = await client.put(f"/users/user/{target['userId']}/disable", headers=auth(owner_token))
    assert response.status == 400
    assert await response.json() == {
        "message": "Not allowed",
        "cause": f"The {target['role']} account can never be disabled",
    }
    assert await login(client, *who)
    response = await client.put(f"/users/user/{target['userId']}/enable", headers=auth(owner_token))
    assert response.status == 200


async def test_enable_unknown_account_is_404(client, owner_token):
    user_id = str(uuid.uuid4())
    response = await client.put(f"/users/user/{user_id}/enable", headers=auth(owner_token))
    assert response.status == 404
    assert await response.json() == {"message": "Not found", "cause": f"There is no account with userId {user_id}"}


@pytest.mark.parametrize("user_id", ["not-a-uuid", "urn:uuid:5974832d-2dc1-4f49-adf1-c6d8bc790275", "x" * 5000])
async def test_enable_with_something_not_a_uuid_is_no_route(client, owner_token, user_id):
    response = await client.put(f"/users/user/{user_id}/enable", headers=auth(owner_token))
    assert response.status == 404
    assert (await response.json())["cause"].startswith("There is no route /users/user/")


async def test_enable_answers_the_canonical_user_id(client, owner_token):
    account, _ = await new_account(client, owner_token)
    response = await client.put(f"/users/user/{account['userId'].upper()}/disable", headers=auth(owner_token))
    assert response.status == 200
    assert await response.json() == {"message": "OK", "userId": account["userId"], "enabled": False}


async def test_application_token_is_the_owners_and_needs_a_name_and_an_address(client, owner_token, platform_token):
    path = "/users/application_token"
    response = await client.get(path, params={"name": "Plug", "resource": "https://plug.example/a"},
                                headers=auth(owner_token))  # fmt: skip
    assert response.status == 200
    body = await response.json()
    assert set(body) == {"accessToken", "userId"}
    # It proves who the owner is to that service, and calls no API route.
    assert (await client.get("/data/sources", headers=auth(body["accessToken"]))).status == 401
    for params, cause in [
        ({"resource": "https://plug.example"}, "name: Missing data for required field."),
        ({"name": "Plug"}, "resource: Missing data for required field."),
        ({"name": "Plug", "resource": "javascript:alert(1)"},
         "resource: The redirect address must start with http:// or https://, not javascript:"),
    ]:  # fmt: skip
        response = await client.get(path, params=params, headers=auth(owner_token))
        assert (response.status, (await response.json())["cause"]) == (400, cause)
    params = {"name": "Plug", "resource": "https://plug.example"}
    assert (await client.get(path, params=params, headers=auth(platform_token))).status == 403


async def test_system_update_applies_nothing_pending_and_says_so(client, owner_token, platform_token):
    for token in (owner_token, platform_token):
        response = await client.get("/system/update", headers=auth(token))
        assert response.status == 200
        body = await response.json()
        assert body["message"] == "Database updated" and body["applied"] == []
        assert isinstance(body["schemaVersion"], int)
    _, app_token = await new_account(client, owner_token)
    assert (await client.get("/system/update", headers=auth(app_token))).status == 403
    assert (await client.get("/system/update")).status == 401
