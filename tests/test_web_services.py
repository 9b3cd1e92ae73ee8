"""Approved services (Login with HAT): the owner approves a service by its origin on the Services
page (or the provider by setting); /hatlogin then gives it an owner token for the API, says so
plainly, and revoking the approval ends the tokens it got at once. Any other service still gets a
`validate` token only."""

from __future__ import annotations

import html
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from tests.conftest import auth
from tests.web_helpers import hidden_fields, logged_in

RUMPEL = {"name": "Rumpel", "redirect": "https://rumpel.example/#/authenticate?x=1"}


async def _token_from_hatlogin(client, service=RUMPEL) -> tuple[str, str]:
    """(the page /hatlogin showed, the token the icon's button returned to the service)."""
    page = await client.get("/hatlogin", params=service)
    assert page.status == 200, await page.text()
    text = await page.text()
    answer = await client.post("/hatlogin", data=hidden_fields(text), allow_redirects=False)
    assert answer.status == 303, await answer.text()
    location = urlsplit(answer.headers["Location"])
    return text, parse_qs(location.query)["token"][0]


async def _approve(client, csrf: str, name: str, origin: str):
    return await client.post(
        "/owner/services", data={"csrf": csrf, "name": name, "origin": origin}, allow_redirects=False
    )


async def _approval_ids(client) -> list[str]:
    page = await (await client.get("/owner/services")).text()
    return [part.split("/")[0] for part in page.split('action="/owner/services/')[1:]]


async def test_an_approved_service_gets_an_owner_token_until_the_approval_is_revoked(client):
    csrf = await logged_in(client)
    # Not approved yet: a token that proves identity only.
    page, token = await _token_from_hatlogin(client)
    assert "acts-as-owner" not in page
    assert jwt.decode(token, options={"verify_signature": False})["accessScope"] == "validate"
    assert (await client.get("/data/sources", headers=auth(token))).status == 401

    answer = await _approve(client, csrf, "Rumpel", "https://Rumpel.example/")
    assert answer.status == 303
    listed = await (await client.get("/owner/services")).text()
    assert "https://rumpel.example" in listed and "Rumpel" in listed

    page, token = await _token_from_hatlogin(client)
    assert '<p class="warning" id="acts-as-owner"><strong>Rumpel will act as you.</strong>' in page
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["accessScope"], claims["iss"], claims["resource"]) == ("owner", "hat.test", "hat.test")
    assert claims["exp"] - claims["iat"] == 7200
    # The API answers it as the owner's.
    assert (await client.get("/users/access_token/validate", headers=auth(token))).status == 200
    response = await client.get("/data/sources", headers=auth(token))
    assert (response.status, await response.json()) == (200, [])

    # Another origin (even another port of the same host) is another service.
    _, other = await _token_from_hatlogin(client, {"name": "Rumpel", "redirect": "https://rumpel.example:8443/"})
    assert jwt.decode(other, options={"verify_signature": False})["accessScope"] == "validate"

    [approval_id] = await _approval_ids(client)
    revoked = await client.post(f"/owner/services/{approval_id}/revoke", data={"csrf": csrf}, allow_redirects=False)
    assert revoked.status == 303
    response = await client.get("/data/sources", headers=auth(token))
    assert response.status == 401
    assert (await response.json())["cause"] == "The token was given to a service whose approval the owner has revoked"
    # Approving it again does not bring the old token back.
    assert (await _approve(client, csrf, "Rumpel", "https://rumpel.example")).status == 303
    assert (await client.get("/data/sources", headers=auth(token))).status == 401


async def test_a_provider_preapproves_by_setting_and_the_owner_cannot_revoke_it(make_client):
    client = await make_client(approved_services="Rumpel=https://rumpel.example, Other=http://127.0.0.1:9000")
    csrf = await logged_in(client)
    page, token = await _token_from_hatlogin(client)
    assert "through your provider" in page
    assert jwt.decode(token, options={"verify_signature": False})["accessScope"] == "owner"
    assert (await client.get("/data/sources", headers=auth(token))).status == 200
    services = await (await client.get("/owner/services")).text()
    assert "approved by your provider" in services and "revoke-" not in services
    answer = await _approve(client, csrf, "Mine", "https://rumpel.example")
    assert answer.status == 409
    # Once the provider takes it out of the settings, its tokens stop working.
    same_database = await make_client(approved_services="")
    assert (await same_database.get("/data/sources", headers=auth(token))).status == 401


@pytest.mark.parametrize(
    ("origin", "cause"),
    [
        ("https://rumpel.example/app", "origin: Give the service's origin only, such as https://rumpel.example: no path or query"),
        ("ftp://rumpel.example", "origin: The redirect address must start with http:// or https://, not ftp:"),
        ("https://user@rumpel.example", "origin: The redirect address must not carry a user name or password"),
        ("https://evil.example;sandbox", "origin: The redirect address's host is not a host name or an IP address"),
    ],
)  # fmt: skip
async def test_a_bad_origin_is_a_400_page_and_approves_nothing(client, origin, cause):
    csrf = await logged_in(client)
    answer = await _approve(client, csrf, "Bad", origin)
    assert answer.status == 400
    assert answer.content_type == "text/html"
    assert cause in html.unescape(await answer.text())
    assert await _approval_ids(client) == []


async def test_approving_needs_the_sessions_csrf_token(client):
    await logged_in(client)
    answer = await _approve(client, "forged" * 8, "Evil", "https://evil.example")
    assert answer.status == 403
    assert await _approval_ids(client) == []
    assert (await client.post("/owner/services/1/revoke", data={"csrf": "x"}, allow_redirects=False)).status == 403


async def test_revoking_an_unknown_approval_is_a_404_page(client):
    csrf = await logged_in(client)
    answer = await client.post("/owner/services/999/revoke", data={"csrf": csrf}, allow_redirects=False)
    assert answer.status == 404
    assert "There is no approved service with id 999" in await answer.text()


async def test_the_same_origin_cannot_be_approved_twice(client):
    csrf = await logged_in(client)
    assert (await _approve(client, csrf, "Rumpel", "https://rumpel.example")).status == 303
    answer = await _approve(client, csrf, "Again", "https://RUMPEL.example:443")
    assert answer.status == 409
    assert "https://rumpel.example is approved already" in await answer.text()


@pytest.mark.parametrize("given", ["Rumpel", "Rumpel=https://r.example/path", "=https://r.example", "R=ftp://r"])
def test_a_malformed_preset_service_setting_is_refused(settings, given):
    from hatd.settings import SettingsError

    with pytest.raises(SettingsError, match="approved_services"):
        settings.replace(approved_services=given)


@pytest.mark.parametrize(
    ("approved", "redirect"),
    [
        # Python's "idna" codec maps ß to ss, where browsers and yarl keep it: another host.
        ("https://messenger.example", "https://meßenger.example/cb"),
        ("https://strasse.example", "https://straße.example/cb"),
    ],
)
async def test_a_look_alike_international_host_is_not_the_approved_one(client, approved, redirect):
    csrf = await logged_in(client)
    assert (await _approve(client, csrf, "Messenger", approved)).status == 303
    page, token = await _token_from_hatlogin(client, {"name": "Messenger", "redirect": redirect})
    assert "acts-as-owner" not in page
    assert jwt.decode(token, options={"verify_signature": False})["accessScope"] == "validate"
    assert "xn--" in page  # the page shows the ASCII host the token really goes to


async def test_an_origin_over_300_characters_is_a_400_page(client):
    csrf = await logged_in(client)
    answer = await _approve(client, csrf, "Long", "https://" + "a" * 400 + ".example")
    assert answer.status == 400
    assert await _approval_ids(client) == []


async def test_a_redirect_with_a_broken_punycode_host_is_a_400_page(client):
    await logged_in(client)
    response = await client.get("/hatlogin", params={"name": "S", "redirect": "https://xn--approved.example/"})
    assert response.status == 400
    assert response.content_type == "text/html"


async def test_revoking_an_approval_also_disables_the_debits_the_service_enabled(client, owner_token):
    # A review found that a service could outlive its approval through a debit it enabled, or an
    # account it made, while it acted as the owner.
    from tests.conftest import new_account
    from tests.raw_helpers import KITCHEN, new_table

    csrf = await logged_in(client)
    assert (await _approve(client, csrf, "Rumpel", "https://rumpel.example")).status == 303
    _, token = await _token_from_hatlogin(client)
    kitchen = await new_table(client, owner_token, KITCHEN)
    _, app_token = await new_account(client, owner_token)
    proposal = {"name": "d", "startDate": "2020-01-01T00:00:00Z", "endDate": "2099-01-01T00:00:00Z",
                "rolling": False, "sell": False, "price": 0, "kind": "contextless",
                "bundleContextless": {"name": "k", "table": {"id": kitchen["id"]}}}  # fmt: skip
    mine = await (await client.post("/dataDebit/propose", json=proposal, headers=auth(app_token))).json()
    theirs = await (await client.post("/dataDebit/propose", json=proposal, headers=auth(app_token))).json()
    # The owner enables one; the service, acting as the owner, the other.
    assert (await client.put(f"/dataDebit/{mine['key']}/enable", headers=auth(owner_token))).status == 200
    assert (await client.put(f"/dataDebit/{theirs['key']}/enable", headers=auth(token))).status == 200
    # It may not make or switch accounts at all.
    body = {"email": "x@example.com", "pass": "pw", "name": "x", "role": "dataDebit"}
    response = await client.post("/users/user", json=body, headers=auth(token))
    assert response.status == 403
    assert (await response.json())["cause"] == (
        "An approved service may not manage accounts; the owner does, with their own token"
    )

    [approval_id] = await _approval_ids(client)
    await client.post(f"/owner/services/{approval_id}/revoke", data={"csrf": csrf}, allow_redirects=False)
    states = {
        key: (await (await client.get(f"/dataDebit/{key}", headers=auth(owner_token))).json())["enabled"]
        for key in (mine["key"], theirs["key"])
    }
    assert states == {mine["key"]: True, theirs["key"]: False}
    assert (await client.get(f"/dataDebit/{theirs['key']}/values", headers=auth(app_token))).status == 403
    log = await (await client.get(f"/dataDebit/{theirs['key']}/log", headers=auth(owner_token))).json()
    assert [entry["action"] for entry in log] == ["propose", "enable", "disable"]


async def test_a_preset_taken_out_of_the_settings_disables_the_debits_its_service_enabled(make_client):
    from tests.conftest import OWNER, login, new_account
    from tests.raw_helpers import KITCHEN, new_table

    client = await make_client(approved_services="Rumpel=https://rumpel.example")
    owner_token = await login(client, *OWNER)
    await logged_in(client)
    _, token = await _token_from_hatlogin(client)
    kitchen = await new_table(client, owner_token, KITCHEN)
    _, app_token = await new_account(client, owner_token)
    proposal = {"name": "d", "startDate": "2020-01-01T00:00:00Z", "endDate": "2099-01-01T00:00:00Z",
                "rolling": False, "sell": False, "price": 0, "kind": "contextless",
                "bundleContextless": {"name": "k", "table": {"id": kitchen["id"]}}}  # fmt: skip
    debit = await (await client.post("/dataDebit/propose", json=proposal, headers=auth(app_token))).json()
    assert (await client.put(f"/dataDebit/{debit['key']}/enable", headers=auth(token))).status == 200
    # The same HAT started again without the preset.
    restarted = await make_client(approved_services="")
    answer = await (await restarted.get(f"/dataDebit/{debit['key']}", headers=auth(owner_token))).json()
    assert answer["enabled"] is False
