"""Managing the HAT from the owner's pages, over real HTTP: an app's account made on the page (its
password shown once), the owner's password (other browsers logged out, this one kept), the open
sessions, and the debits page's states. Every form needs the session's CSRF token, bad input is a
400 page, and a refused form changes nothing."""

from __future__ import annotations

import datetime as dt
import html
import re

import asyncpg
import pytest

from hatd.web import sessions
from tests.conftest import OWNER, login, new_account
from tests.raw_helpers import KITCHEN, call, new_table
from tests.test_debits import _proposal
from tests.web_helpers import hidden_fields, logged_in, page_login

NEW_PASSWORD = "a-new-owner-password"


def _text(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.S)
    assert found, element_id
    return html.unescape(found.group(1)).strip()


async def _count(database: str, query: str, *args: object) -> int:
    conn = await asyncpg.connect(database)
    try:
        return int(await conn.fetchval(query, *args))
    finally:
        await conn.close()


# -- an app's account ------------------------------------------------------------------------


async def test_the_owner_creates_an_app_account_and_sees_its_password_once(client, database):
    csrf = await logged_in(client)
    form = {"csrf": csrf, "name": "Energy Insights", "email": "insights@app.example", "role": "dataDebit"}
    response = await client.post("/owner/accounts", data=form)
    assert response.status == 201
    page = await response.text()
    password = _text(page, "new-password")
    assert len(password) == 24 and _text(page, "new-username") == "insights@app.example"
    assert _text(page, "new-role") == "dataDebit"

    # The app logs in with it over the API, as that account.
    token_answer = await client.get(
        "/users/access_token", headers={"username": "insights@app.example", "password": password}
    )
    assert token_answer.status == 200
    me = await token_answer.json()
    owner_token = await login(client, *OWNER)
    _, listed = await call(client, "GET", "/users/user", owner_token)
    made = next(account for account in listed if account["userId"] == me["userId"])
    assert made == {**made, "name": "Energy Insights", "role": "dataDebit", "enabled": True}

    # Listed with its role and state, and the password is never shown again nor stored as it is.
    accounts_page = await (await client.get("/owner/accounts")).text()
    card = re.search(rf'<article class="card" id="account-{me["userId"]}">(.*?)</article>', accounts_page, re.S)
    assert card and "dataDebit" in card.group(1) and ">enabled<" in card.group(1)
    assert password not in accounts_page
    assert await _count(database, "SELECT count(*) FROM accounts WHERE pass_hash = $1", password) == 0
    assert await _count(database, "SELECT count(*) FROM accounts WHERE pass_hash LIKE '$2b$%' AND name = $1",
                        "Energy Insights") == 1  # fmt: skip


async def test_a_data_credit_account_is_made_too(client):
    csrf = await logged_in(client)
    form = {"csrf": csrf, "name": "Plug", "email": "plug@app.example", "role": "dataCredit"}
    page = await (await client.post("/owner/accounts", data=form)).text()
    token = await login(client, "plug@app.example", _text(page, "new-password"))
    status, _ = await call(client, "GET", "/users/access_token/validate", token)
    assert status == 200


async def test_creating_an_account_needs_the_csrf_token_and_makes_nothing_without_it(client, database, make_client):
    await logged_in(client)
    form = {"name": "Sneaky", "email": "sneaky@app.example", "role": "dataDebit"}
    for sent in (form, {**form, "csrf": "forged"}):
        response = await client.post("/owner/accounts", data=sent)
        assert response.status == 403
        assert "did not come from this HAT" in await response.text()
    stranger = await make_client()
    assert (await stranger.post("/owner/accounts", data={**form, "csrf": "x"})).status == 403
    assert await _count(database, "SELECT count(*) FROM accounts WHERE name = 'Sneaky'") == 0


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        ({"role": "owner"}, "role: Must be one of: dataDebit, dataCredit."),
        ({"role": "platform"}, "role: Must be one of: dataDebit, dataCredit."),
        ({"email": "not an email"}, "email: Not a valid email address."),
        ({"name": "   "}, "name: The name is empty"),
        ({"name": "x" * 201}, "name: Length must be between 1 and 200."),
    ],
)
async def test_bad_input_for_an_account_is_a_400_page_and_makes_nothing(client, database, change, cause):
    csrf = await logged_in(client)
    form = {"csrf": csrf, "name": "Good", "email": "good@app.example", "role": "dataDebit", **change}
    response = await client.post("/owner/accounts", data=form)
    assert response.status == 400
    assert html.unescape(_text(await response.text(), "cause")) == cause
    assert await _count(database, "SELECT count(*) FROM accounts") == 2  # the owner and the platform


async def test_an_account_name_or_email_taken_is_a_409_page(client, owner_token):
    await new_account(client, owner_token, name="Taken", email="taken@app.example")
    csrf = await logged_in(client)
    for form in ({"name": "Taken", "email": "other@app.example"}, {"name": "Other", "email": "TAKEN@app.example"}):
        response = await client.post("/owner/accounts", data={"csrf": csrf, "role": "dataDebit", **form})
        assert response.status == 409
        assert "already exists" in await response.text()


# -- the owner's password ----------------------------------------------------------------------


def _change(csrf: str, current: str = OWNER[1], new: str = NEW_PASSWORD, repeat: str | None = None) -> dict[str, str]:
    return {"csrf": csrf, "current": current, "new": new, "repeat": new if repeat is None else repeat}


async def test_changing_the_password_ends_every_other_session_and_keeps_this_one(client, make_client, database):
    here, there = client, await make_client()
    csrf = await logged_in(here)
    await logged_in(there)
    assert (await there.get("/owner", allow_redirects=False)).status == 200
    device_before = _device_cookie(here)

    response = await here.post("/owner/password", data=_change(csrf))
    assert response.status == 200
    changed = re.search(r'<p class="notice" id="changed" role="status">(.*?)</p>', await response.text(), re.S)
    assert changed and " ".join(changed.group(1).split()) == (
        "<strong>Your password is changed.</strong> 1 other browser session ended. This browser stays logged in."
    )

    # This browser stays logged in; the other one is sent to the login page.
    assert (await here.get("/owner", allow_redirects=False)).status == 200
    gone = await there.get("/owner", allow_redirects=False)
    assert (gone.status, gone.headers["Location"]) == (303, "/owner/login?next=/owner")
    assert await _count(database, "SELECT count(*) FROM web_sessions") == 1

    # The new password logs in, the old one no longer does.
    assert (await page_login(there, password=OWNER[1])).status == 401
    assert (await page_login(there, password=NEW_PASSWORD)).status == 303
    assert (await login_status(here, OWNER[0], OWNER[1])) == 401
    assert (await login_status(here, OWNER[0], NEW_PASSWORD)) == 200
    # This browser's device cookie is a new one, made with the new password (the old one is void).
    assert _device_cookie(here) not in (None, device_before)


def _device_cookie(client) -> str | None:
    for cookie in client.session.cookie_jar:
        if cookie.key.startswith("hatd_device_"):
            return str(cookie.value)
    return None


async def login_status(client, username: str, password: str) -> int:
    response = await client.get("/users/access_token", headers={"username": username, "password": password})
    return response.status


async def test_a_wrong_current_password_is_refused_and_changes_nothing(client, make_client, database):
    here, there = client, await make_client()
    csrf = await logged_in(here)
    await logged_in(there)
    before = await _count(database, "SELECT count(*) FROM web_sessions")
    response = await here.post("/owner/password", data=_change(csrf, current="not-the-password"))
    assert response.status == 401
    assert _text(await response.text(), "error") == "Your current password is wrong; nothing was changed."
    assert (await there.get("/owner", allow_redirects=False)).status == 200
    assert await _count(database, "SELECT count(*) FROM web_sessions") == before == 2
    assert (await login_status(here, OWNER[0], OWNER[1])) == 200
    assert (await login_status(here, OWNER[0], NEW_PASSWORD)) == 401


@pytest.mark.parametrize(
    ("form", "cause"),
    [
        ({"new": "short", "repeat": "short"}, "new: The new password must be at least 8 characters long"),
        ({"new": "é" * 40, "repeat": "é" * 40}, "new: The new password is longer than 72 bytes, which bcrypt cannot use"),
        ({"repeat": "something-else"}, "repeat: The new password and its repetition differ"),
        ({"current": ""}, "current: Length must be between 1 and 1024."),
    ],
)  # fmt: skip
async def test_a_bad_new_password_is_a_400_page_and_changes_nothing(client, make_client, form, cause):
    there = await make_client()
    await logged_in(there)
    csrf = await logged_in(client)
    response = await client.post("/owner/password", data={**_change(csrf), **form})
    assert response.status == 400
    assert html.unescape(_text(await response.text(), "cause")) == cause
    assert (await there.get("/owner", allow_redirects=False)).status == 200
    assert (await login_status(client, OWNER[0], OWNER[1])) == 200


async def test_changing_the_password_needs_the_csrf_token(client, make_client):
    there = await make_client()
    await logged_in(there)
    await logged_in(client)
    without = {name: value for name, value in _change("").items() if name != "csrf"}
    for form in (without, _change("forged")):
        response = await client.post("/owner/password", data=form)
        assert response.status == 403
    stranger = await make_client()
    assert (await stranger.post("/owner/password", data=_change("x"))).status == 403
    assert (await there.get("/owner", allow_redirects=False)).status == 200
    assert (await login_status(client, OWNER[0], OWNER[1])) == 200


# -- the owner's sessions ----------------------------------------------------------------------


async def test_the_owner_sees_the_open_sessions_and_ends_another(client, make_client):
    there = await make_client()
    await logged_in(there)
    client.session.headers["User-Agent"] = "Phone browser/1.0"
    await page_login(client)
    page = await (await client.get("/owner/security")).text()
    csrf = hidden_fields(page)["csrf"]
    ids = [int(found) for found in re.findall(r'<article class="card session" id="session-(\d+)">', page)]
    assert len(ids) == 2
    mine = re.search(r'<article class="card session" id="session-(\d+)">\s*<h3>This browser</h3>', page)
    assert mine and "Phone browser/1.0" in page
    other = next(found for found in ids if found != int(mine.group(1)))

    ended = await client.post(f"/owner/sessions/{other}/end", data={"csrf": csrf}, allow_redirects=False)
    assert (ended.status, ended.headers["Location"]) == (303, "/owner/security#sessions")
    assert (await there.get("/owner", allow_redirects=False)).status == 303
    assert (await client.get("/owner", allow_redirects=False)).status == 200
    again = await client.post(f"/owner/sessions/{other}/end", data={"csrf": csrf})
    assert again.status == 404
    assert f"You have no open session {other}" in await again.text()

    # Ending this browser's own session logs it out.
    own = int(mine.group(1))
    out = await client.post(f"/owner/sessions/{own}/end", data={"csrf": csrf}, allow_redirects=False)
    assert (out.status, out.headers["Location"]) == (303, "/owner/login")
    assert (await client.get("/owner", allow_redirects=False)).status == 303


async def test_ending_a_session_needs_the_csrf_token(client, make_client):
    there = await make_client()
    await logged_in(there)
    await logged_in(client)
    page = await (await client.get("/owner/security")).text()
    ids = re.findall(r'id="session-(\d+)"', page)
    for session_id in ids:
        for form in ({}, {"csrf": "forged"}):
            assert (await client.post(f"/owner/sessions/{session_id}/end", data=form)).status == 403
    assert (await there.get("/owner", allow_redirects=False)).status == 200


async def test_a_session_is_marked_seen_at_most_once_a_minute(client, database):
    await logged_in(client)
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("UPDATE web_sessions SET last_seen = now() - interval '2 hours'")
        await client.get("/owner")
        assert await conn.fetchval("SELECT last_seen > now() - interval '1 minute' FROM web_sessions")
        await conn.execute("UPDATE web_sessions SET last_seen = now() - interval '30 seconds'")
        await client.get("/owner")
        assert await conn.fetchval("SELECT last_seen < now() - interval '20 seconds' FROM web_sessions")
    finally:
        await conn.close()


async def test_a_sessions_browser_is_kept_printable_and_short(client, database):
    client.session.headers["User-Agent"] = "Odd\tbrowser " + "x" * 400
    await logged_in(client)
    stored = await _text_of(database, "SELECT user_agent FROM web_sessions")
    assert stored == ("Oddbrowser " + "x" * 400)[: sessions.MAX_USER_AGENT]


async def _text_of(database: str, query: str) -> str:
    conn = await asyncpg.connect(database)
    try:
        return str(await conn.fetchval(query))
    finally:
        await conn.close()


# -- the debits page -------------------------------------------------------------------------


def _iso(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"


async def test_the_debits_page_puts_proposals_first_and_says_each_debits_state(client, owner_token, database):
    kitchen = await new_table(client, owner_token, KITCHEN)
    _, app_token = await new_account(client, owner_token, name="Energy App", number="states")
    now = dt.datetime.now(dt.UTC)
    windows = {
        "active": (now - dt.timedelta(days=1), now + dt.timedelta(days=1)),
        "not started": (now + dt.timedelta(days=2), now + dt.timedelta(days=9)),
        "ended": (now - dt.timedelta(days=9), now + dt.timedelta(days=3)),
        "disabled": (now - dt.timedelta(days=1), now + dt.timedelta(days=1)),
        "waiting": (now - dt.timedelta(days=1), now + dt.timedelta(days=1)),
    }
    keys = {}
    for state, (start, end) in windows.items():
        body = {**_proposal(kitchen, start=start, end=end), "name": f"Debit {state}"}
        status, debit = await call(client, "POST", "/dataDebit/propose", app_token, body)
        assert status == 201, debit
        keys[state] = debit["key"]
    csrf = await logged_in(client)
    for state in ("active", "not started", "ended", "disabled"):
        assert (await client.post(f"/owner/debits/{keys[state]}/enable", data={"csrf": csrf})).status == 200
    assert (await client.post(f"/owner/debits/{keys['disabled']}/disable", data={"csrf": csrf})).status == 200
    # The window of the one enabled as running ends meanwhile.
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("UPDATE data_debits SET end_date = now() - interval '1 day' WHERE key = $1", keys["ended"])
    finally:
        await conn.close()

    page = await (await client.get("/owner/debits")).text()
    shown = re.findall(r'<span class="state ([\w-]+)" id="state-([0-9a-f-]+)">([\w ]+)</span>', page)
    assert shown[0] == ("waiting", keys["waiting"], "waiting")  # the proposal first
    assert {(key, state) for _, key, state in shown} == {(key, state) for state, key in keys.items()}
    assert '<p id="waiting-count"><strong>1</strong> proposal waiting for you.</p>' in page
    assert page.index("Waiting for you") < page.index(f"debit-{keys['waiting']}") < page.index("Decided")


async def test_enabling_a_debit_whose_window_has_ended_warns_instead_of_a_plain_ok(client, owner_token, database):
    kitchen = await new_table(client, owner_token, KITCHEN)
    _, app_token = await new_account(client, owner_token, name="Late App", number="late")
    now = dt.datetime.now(dt.UTC)
    proposal = _proposal(kitchen, start=now - dt.timedelta(days=9), end=now + dt.timedelta(days=1))
    status, debit = await call(client, "POST", "/dataDebit/propose", app_token, proposal)
    assert status == 201
    key = debit["key"]
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("UPDATE data_debits SET end_date = now() - interval '1 day' WHERE key = $1", key)
    finally:
        await conn.close()
    csrf = await logged_in(client)
    # Waiting still, but its page says enabling it gives the app nothing.
    waiting = await (await client.get(f"/owner/debits/{key}")).text()
    assert "This proposal's window has ended" in waiting
    assert 'id="ended-warning"' in waiting

    response = await client.post(f"/owner/debits/{key}/enable", data={"csrf": csrf}, allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, f"/owner/debits/{key}")
    page = await (await client.get(response.headers["Location"])).text()
    assert "This debit is enabled, but its window ended" in page
    assert f'<span class="state ended" id="state-{key}">ended</span>' in page
    status, _ = await call(client, "GET", f"/dataDebit/{key}/values", app_token)
    assert status == 403
    # A debit in its window goes back to the list, as before.
    fresh = await call(client, "POST", "/dataDebit/propose", app_token, _proposal(kitchen))
    ok = await client.post(f"/owner/debits/{fresh[1]['key']}/enable", data={"csrf": csrf}, allow_redirects=False)
    assert ok.headers["Location"] == f"/owner/debits#debit-{fresh[1]['key']}"


async def test_guessing_the_current_password_is_limited_as_logins_are(client, make_client):
    there = await make_client()
    await logged_in(there)
    csrf = await logged_in(client)
    client.session.cookie_jar.clear(lambda cookie: cookie.key.startswith("hatd_device_"))  # a stolen session alone
    for _ in range(5):
        response = await client.post("/owner/password", data=_change(csrf, current="a-guess"))
        assert response.status == 401
    limited = await client.post("/owner/password", data=_change(csrf))  # even the right one waits now
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert (await there.get("/owner", allow_redirects=False)).status == 200


async def test_the_password_forms_name_a_user_for_password_managers(client):
    field = '<input type="text" name="username" value="owner" autocomplete="username" id="username" hidden>'
    assert field in await (await client.get("/owner/login")).text()
    await logged_in(client)
    security = await (await client.get("/owner/security")).text()
    assert field in security
    assert 'autocomplete="current-password"' in security and security.count('autocomplete="new-password"') == 2
