"""The owner's own pages over HTTP: logging in and out, their data, data debits and accounts, and
that every button is a POST that needs the session's CSRF token."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import pytest

from hatd.accounts.bootstrap import set_password
from hatd.state import LOGIN_THROTTLE
from hatd.web import sessions
from tests.conftest import OWNER, auth, new_account
from tests.raw_helpers import KITCHEN, call, created, new_table
from tests.test_debits import _proposal
from tests.web_helpers import LOGIN_COOKIE, SESSION_COOKIE, hidden_fields, logged_in, page_login


async def test_pages_without_a_session_send_the_browser_to_the_login_page(client):
    for path in ("/owner", "/owner/debits", "/owner/accounts", "/owner/tables/1"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"] == f"/owner/login?next={path}"
    home = await client.get("/", allow_redirects=False)
    assert (home.status, home.headers["Location"]) == (303, "/owner")


async def test_login_and_logout(client):
    response = await page_login(client, next_path="/owner/debits")
    assert (response.status, response.headers["Location"]) == (303, "/owner/debits")
    page = await client.get("/owner")
    assert page.status == 200 and "Log out" in await page.text()
    # An open session skips the login form.
    again = await client.get("/owner/login", allow_redirects=False)
    assert (again.status, again.headers["Location"]) == (303, "/owner")

    csrf = hidden_fields(await page.text())["csrf"]
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    out = await client.post("/owner/logout", data={"csrf": csrf}, allow_redirects=False)
    assert (out.status, out.headers["Location"]) == (303, "/owner/login")
    # The session is gone from the database: the old cookie, sent again, opens nothing.
    replay = await client.get("/owner", cookies={SESSION_COOKIE: cookie}, allow_redirects=False)
    assert replay.status == 303


async def test_a_wrong_password_says_so(client):
    response = await page_login(client, password="not-it")
    assert response.status == 401
    assert "Wrong password." in await response.text()
    assert SESSION_COOKIE not in response.cookies


async def test_failed_logins_are_limited_per_client(client):
    for _ in range(5):
        assert (await page_login(client, password="guess")).status == 401
    response = await page_login(client)  # even the right password waits now
    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert "Too many failed logins; try again in" in await response.text()


async def test_the_login_form_needs_its_csrf_cookie(client, make_client):
    page = await client.get("/owner/login")
    fields = hidden_fields(await page.text())
    other = await make_client()  # a page elsewhere posting the form: it has no such cookie
    response = await other.post("/owner/login", data={**fields, "password": OWNER[1]}, allow_redirects=False)
    assert response.status == 403
    assert SESSION_COOKIE not in response.cookies
    assert "The login form had expired" in await response.text()


async def test_login_never_sends_the_browser_to_another_site(client):
    for next_path in ("//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        client.session.cookie_jar.clear()
        response = await page_login(client, next_path=next_path)
        assert (response.status, response.headers["Location"]) == (303, "/owner"), next_path


async def test_a_forged_or_altered_cookie_opens_nothing(client):
    await logged_in(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    secret, _, signature = cookie.partition(".")
    altered = secret[:-1] + ("B" if secret.endswith("A") else "A")
    for forged in (f"{secret}.{'A' * len(signature)}", f"{altered}.{signature}", secret, "", "." * 300):
        client.session.cookie_jar.clear()
        response = await client.get("/owner", cookies={SESSION_COOKIE: forged}, allow_redirects=False)
        assert response.status == 303, forged


async def test_a_new_password_ends_the_sessions(client, database):
    await logged_in(client)
    conn = await asyncpg.connect(database)
    try:
        await set_password(conn, "owner", "a-new-password", 4)
    finally:
        await conn.close()
    assert (await client.get("/owner", allow_redirects=False)).status == 303


async def test_the_data_page_lists_sources_and_tables_with_records_and_last_update(client, owner_token):
    kitchen = await new_table(client, owner_token, KITCHEN)
    await new_table(client, owner_token, {"name": "steps", "source": "fitbit", "fields": [{"name": "count"}]})
    sub_field = kitchen["subTables"][0]["fields"][0]["id"]
    await created(client, owner_token, "/data/record/values", [
        {"record": {"name": f"r{i}", "lastUpdated": f"2026-01-0{i + 1}T10:00:00Z"},
         "values": [{"value": f"v{i}", "field": {"id": sub_field}, "lastUpdated": f"2026-01-0{i + 1}T10:00:00Z"}]}
        for i in range(3)
    ])  # fmt: skip
    await logged_in(client)
    text = await (await client.get("/owner")).text()
    assert text.index("<h2>fibaro</h2>") < text.index("<h2>fitbit</h2>")
    row = re.search(rf'<tr id="table-{kitchen["id"]}">(.*?)</tr>', text, re.S).group(1)
    assert f'<a href="/owner/tables/{kitchen["id"]}">kitchen</a>' in row
    assert "+1 subtable<" in row
    assert '<td class="num">3</td>' in row  # values in the subtable count for its top-level table
    assert '<td><time datetime="2026-01-03T10:00:00.000Z">03 Jan 2026, 10:00 UTC</time></td>' in row
    assert re.search(r'>steps</a>.*?<td class="num">0</td>\s*<td>never</td>', text, re.S)
    assert "kitchenElectricity</a>" not in text  # subtables are inside their top-level table


async def test_a_table_page_refuses_what_is_not_there(client, owner_token):
    kitchen = await new_table(client, owner_token, KITCHEN)
    await logged_in(client)
    missing = await client.get("/owner/tables/999999")
    assert missing.status == 404 and "There is no table with id 999999" in await missing.text()
    bad = await client.get(f"/owner/tables/{kitchen['id']}", params={"cursor": "nonsense"})
    assert bad.status == 400 and "Not a cursor this HAT made" in await bad.text()


async def _proposed_debit(client, owner_token):
    kitchen = await new_table(client, owner_token, KITCHEN)
    await created(client, owner_token, "/data/record/values", [
        {"record": {"name": "r"}, "values": [{"value": "v", "field": {"id": kitchen["fields"][0]["id"]}}]}
    ])  # fmt: skip
    account, app_token = await new_account(client, owner_token, role="dataDebit", name="Energy App", number="e1")
    status, debit = await call(client, "POST", "/dataDebit/propose", app_token, _proposal(kitchen))
    assert status == 201
    return debit, account, app_token


async def test_the_owner_enables_and_disables_a_debit_from_its_page(client, owner_token):
    debit, _, app_token = await _proposed_debit(client, owner_token)
    key = debit["key"]
    csrf = await logged_in(client)
    page = await (await client.get("/owner/debits")).text()
    card = re.search(rf'<article class="card debit" id="debit-{key}">(.*?)</article>', page, re.S).group(1)
    assert "DD Kitchen electricity on weekend parties" in card
    assert "<dt>Proposed by</dt><dd>Energy App</dd>" in card
    assert "<dt>Bundle</dt><dd>Everything kitchen (contextless)</dd>" in card
    assert f'<dt>From</dt><dd><time datetime="{debit["startDate"]}">' in card
    assert f'<span class="state waiting" id="state-{key}">waiting</span>' in card  # never enabled yet
    assert f'action="/owner/debits/{key}/enable"' in card

    values = f"/dataDebit/{key}/values"
    assert (await client.get(values, headers=auth(app_token))).status == 403
    enabled = await client.post(f"/owner/debits/{key}/enable", data={"csrf": csrf}, allow_redirects=False)
    assert (enabled.status, enabled.headers["Location"]) == (303, f"/owner/debits#debit-{key}")
    assert (await client.get(values, headers=auth(app_token))).status == 200
    page = await (await client.get("/owner/debits")).text()
    assert f'id="disable-{key}"' in page
    assert f'<span class="state active" id="state-{key}">active</span>' in page

    back = f"/owner/debits/{key}"
    disabled = await client.post(f"{back}/disable", data={"csrf": csrf, "back": back}, allow_redirects=False)
    assert (disabled.status, disabled.headers["Location"]) == (303, back)
    assert (await client.get(values, headers=auth(app_token))).status == 403

    log = await (await client.get(back)).text()
    assert "<dt>Tables</dt><dd>kitchen (fibaro)</dd>" in log
    rows = re.findall(r"<tr><td><time [^>]+>[^<]+</time></td><td>(\w+)</td><td>([^<]+)</td>", log)
    assert rows == [("propose", "Energy App"), ("enable", "owner"), ("values", "Energy App"), ("disable", "owner")]


async def test_debit_buttons_need_the_sessions_csrf_token(client, owner_token, make_client):
    debit, _, _ = await _proposed_debit(client, owner_token)
    await logged_in(client)
    enable = f"/owner/debits/{debit['key']}/enable"
    for form in ({}, {"csrf": "forged"}):
        response = await client.post(enable, data=form, allow_redirects=False)
        assert response.status == 403
        assert "did not come from this HAT" in await response.text()
    stranger = await make_client()
    assert (await stranger.post(enable, data={"csrf": "x"}, allow_redirects=False)).status == 403
    # A GET never changes anything.
    assert (await client.get(enable)).status == 405
    status, state = await call(client, "GET", f"/dataDebit/{debit['key']}", owner_token)
    assert (status, state["enabled"]) == (200, False)


async def test_an_unknown_debit_is_a_404_page(client):
    csrf = await logged_in(client)
    key = "00000000-0000-0000-0000-000000000000"
    assert (await client.get(f"/owner/debits/{key}")).status == 404
    response = await client.post(f"/owner/debits/{key}/enable", data={"csrf": csrf})
    assert response.status == 404
    assert f"There is no data debit with key {key}" in await response.text()


async def test_the_owner_disables_and_enables_an_app_account(client, owner_token):
    account, app_token = await new_account(client, owner_token, role="dataCredit", name="Plug", number="p1")
    user_id = account["userId"]
    csrf = await logged_in(client)
    page = await (await client.get("/owner/accounts")).text()
    card = re.search(rf'<article class="card" id="account-{user_id}">(.*?)</article>', page, re.S).group(1)
    assert "Plug" in card and "dataCredit" in card and "enabled" in card
    assert "disable-" not in page.split("This HAT's own accounts")[1]  # no buttons for owner and platform

    off = await client.post(f"/owner/accounts/{user_id}/disable", data={"csrf": csrf}, allow_redirects=False)
    assert (off.status, off.headers["Location"]) == (303, f"/owner/accounts#account-{user_id}")
    assert (await client.get("/users/access_token/validate", headers=auth(app_token))).status == 401
    assert f'id="enable-{user_id}"' in await (await client.get("/owner/accounts")).text()
    on = await client.post(f"/owner/accounts/{user_id}/enable", data={"csrf": csrf}, allow_redirects=False)
    assert on.status == 303
    assert (await client.get("/users/access_token/validate", headers=auth(app_token))).status == 200


async def test_the_owner_account_cannot_be_disabled_from_a_page(client, owner_token):
    csrf = await logged_in(client)
    owner_id = (await call(client, "GET", "/users/user", owner_token))[1][0]["userId"]
    response = await client.post(f"/owner/accounts/{owner_id}/disable", data={"csrf": csrf})
    assert response.status == 400
    assert "The owner account can never be disabled" in await response.text()


async def test_the_stylesheet_is_served(client):
    response = await client.get("/owner/static/hatd.css")
    assert response.status == 200 and response.content_type == "text/css"
    assert "max-width" in await response.text()


async def test_parallel_wrong_passwords_cannot_slip_past_the_limit(client):
    form_page = await client.get("/owner/login")
    fields = hidden_fields(await form_page.text())
    attempts = [client.post("/owner/login", data={**fields, "password": f"guess{i}"}) for i in range(10)]
    statuses = sorted(r.status for r in await asyncio.gather(*attempts))
    assert statuses == [401] * 5 + [429] * 5


async def test_a_success_does_not_count_against_the_limit(client):
    for _ in range(4):
        assert (await page_login(client, password="guess")).status == 401
    for _ in range(3):
        client.session.cookie_jar.clear()
        assert (await page_login(client)).status == 303
    client.session.cookie_jar.clear()
    assert (await page_login(client, password="guess")).status == 401  # the fifth failure
    assert (await page_login(client)).status == 429


async def test_failed_page_logins_count_against_the_owners_api_login_bucket(make_client, owner_token):
    client = await make_client(login_refill_seconds=1000)  # nothing refills during the test
    owner_id = (await call(client, "GET", "/users/user", owner_token))[1][0]["userId"]
    accounts = client.app[LOGIN_THROTTLE].accounts
    for _ in range(accounts.burst - 1):  # as if the API had seen all but one of the failures allowed
        assert accounts.take(f"user:{owner_id}") == 0
    assert (await page_login(client, password="guess")).status == 401  # takes the account's last token
    assert (await page_login(client)).status == 429
    api = await client.get("/users/access_token", headers={"username": OWNER[0], "password": OWNER[1]})
    assert api.status == 429


async def test_a_hostile_next_posted_to_the_form_stays_on_the_hat(client):
    fields = hidden_fields(await (await client.get("/owner/login")).text())
    for next_path in ("//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({LOGIN_COOKIE: fields["csrf"]})
        response = await client.post(
            "/owner/login", data={**fields, "next": next_path, "password": OWNER[1]}, allow_redirects=False
        )
        assert (response.status, response.headers["Location"]) == (303, "/owner"), next_path


async def test_a_hostile_back_stays_on_the_hat(client, owner_token):
    debit, _, _ = await _proposed_debit(client, owner_token)
    csrf = await logged_in(client)
    response = await client.post(
        f"/owner/debits/{debit['key']}/enable", data={"csrf": csrf, "back": "//evil.example/"}, allow_redirects=False
    )
    assert (response.status, response.headers["Location"]) == (303, "/owner")


async def test_logging_in_again_ends_the_previous_session(client):
    form = hidden_fields(await (await client.get("/owner/login")).text())
    await logged_in(client)
    first = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    # A second login form, open since before, is sent by the same browser (with the first session's cookie).
    client.session.cookie_jar.update_cookies({LOGIN_COOKIE: form["csrf"]})
    again = await client.post("/owner/login", data={**form, "password": OWNER[1]}, allow_redirects=False)
    assert again.status == 303
    client.session.cookie_jar.clear()
    response = await client.get("/owner", cookies={SESSION_COOKIE: first}, allow_redirects=False)
    assert response.status == 303


async def test_a_second_login_tab_keeps_the_first_tabs_form_working(client):
    first = hidden_fields(await (await client.get("/owner/login")).text())
    await client.get("/owner/login")  # another tab
    response = await client.post("/owner/login", data={**first, "password": OWNER[1]}, allow_redirects=False)
    assert response.status == 303


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Content-Type": "application/x-www-form-urlencoded; charset=bogus"}, b"password=x&csrf=y"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"password=\xff&csrf=y"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"password=a%00b&csrf=y"),
        ({"Content-Type": "multipart/form-data"}, b"--x\r\n"),
        ({"Content-Type": "multipart/form-data; boundary=zz"}, b"--x\r\nnothing\r\n"),
        (
            {"Content-Type": "multipart/form-data; boundary=zz"},
            b'--zz\r\nContent-Disposition: form-data; name="password"\r\nContent-Type: text/plain; charset=bogus\r\n\r\nx\r\n--zz--\r\n',
        ),
        (
            {"Content-Type": "multipart/form-data; boundary=zz"},
            b'--zz\r\nContent-Disposition: form-data; name="password"\r\n\r\n\xff\xfe\r\n--zz--\r\n',
        ),
    ],
)
async def test_a_body_that_is_not_a_readable_form_is_a_400_page(client, headers, body):
    """Logged in, so that the session and CSRF checks pass and every path reaches its form: each
    one answers the same 400 page naming the form as unreadable, not a 403 or a 500."""
    await logged_in(client)
    for path in ("/owner/login", "/owner/logout", "/hatlogin"):
        response = await client.post(path, data=body, headers=headers, allow_redirects=False)
        assert response.status == 400, (path, response.status)
        assert response.content_type == "text/html"
        page = await response.text()
        assert "<h1>Invalid form</h1>" in page, path
        assert re.search(r'<p class="error" id="cause">[^<]+</p>', page), path


async def test_csrf_tokens_and_cookies_of_any_characters_are_refused_not_crashed_on(client):
    response = await client.post("/owner/login", data={"csrf": "é", "password": "x"})
    assert response.status == 403
    for cookie in ("a.é", "é", "a.\udcff".encode("utf-8", "surrogateescape").decode("latin-1")):
        client.session.cookie_jar.clear()
        response = await client.get("/owner", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}, allow_redirects=False)
        assert response.status == 303, cookie
    csrf = await logged_in(client)
    assert csrf
    assert (
        await client.post(
            "/owner/logout", data=b"csrf=%ff", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    ).status == 403


async def test_errors_on_the_pages_are_pages(client):
    await logged_in(client)
    for path, status in (("/owner/tables/abc", 404), ("/owner/debits/nope", 404), ("/owner/nothing", 404)):
        response = await client.get(path)
        assert response.status == status, path
        assert response.content_type == "text/html", path
        assert "There is no route" in await response.text()
    big = await client.post("/owner/logout", data=b"x" * (10 * 1024 * 1024 + 1),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert big.status == 413 and big.content_type == "text/html"
    # The API's errors stay JSON.
    assert (await client.get("/data/nothing")).content_type == "application/json"


def test_each_hat_names_its_cookies_for_itself():
    # Browsers keep cookies per host, not per port: two HATs on localhost must not share a session.
    alice, bob = sessions.cookie_names("http://localhost:8081"), sessions.cookie_names("http://localhost:8082")
    assert alice != bob and set(alice).isdisjoint(bob)
    assert all(name.startswith("__Host-") for name in sessions.cookie_names("https://alice.example"))


async def test_over_https_the_cookies_are_secure_and_host_bound(make_client):
    client = await make_client(hat_address="https://alice.example")
    session_name, login_name = sessions.cookie_names("https://alice.example")
    form = await client.get("/owner/login")
    assert form.cookies[login_name]["secure"] and form.cookies[login_name]["path"] == "/"
    fields = hidden_fields(await form.text())
    # The test client speaks plain http, so it keeps no Secure cookie: send the login cookie back by hand.
    response = await client.post("/owner/login", data={**fields, "password": OWNER[1]},
                                 cookies={login_name: fields["csrf"]}, allow_redirects=False)  # fmt: skip
    assert response.status == 303
    cookie = response.cookies[session_name]
    assert cookie["secure"] and cookie["httponly"] and cookie["path"] == "/" and not cookie["domain"]


async def test_the_owner_downloads_the_whole_hat_from_the_data_page(client, owner_token):
    await new_table(client, owner_token, KITCHEN)
    await logged_in(client)
    page = await (await client.get("/owner")).text()
    assert '<a href="/owner/export" id="export">' in page
    download = await client.get("/owner/export", headers={"Sec-Fetch-Site": "same-origin"})
    assert download.status == 200
    assert download.headers["Cache-Control"] == "no-store"
    assert download.content_type == "application/x-ndjson"
    assert download.headers["Content-Disposition"].startswith('attachment; filename="hat-export-')
    body = await download.read()
    same = await client.get("/export", headers=auth(owner_token))
    assert body == await same.read()
    assert b'"section":"data_tables"' in body and b"kitchen" in body
    client.session.cookie_jar.clear()
    assert (await client.get("/owner/export", allow_redirects=False)).status == 303  # no session: log in first


async def test_another_site_cannot_start_a_download_of_the_hat(client):
    await logged_in(client)
    for site in ("cross-site", "same-site"):
        response = await client.get("/owner/export", headers={"Sec-Fetch-Site": site})
        assert response.status == 403 and response.content_type == "text/html"
        assert "Download your data from your HAT&#39;s own data page" in await response.text()
    typed_in = await client.get("/owner/export", headers={"Sec-Fetch-Site": "none"})
    assert typed_in.status == 200
    # Read to its end: an export left unread holds the app's shutdown until its stall timeout.
    assert (await typed_in.read()).startswith(b'{"')


async def test_logging_out_over_https_deletes_the_host_bound_cookie(make_client):
    client = await make_client(hat_address="https://alice.example")
    session_name, login_name = sessions.cookie_names("https://alice.example")
    fields = hidden_fields(await (await client.get("/owner/login")).text())
    response = await client.post("/owner/login", data={**fields, "password": OWNER[1]},
                                 cookies={login_name: fields["csrf"]}, allow_redirects=False)  # fmt: skip
    session = response.cookies[session_name].value
    home = await client.get("/owner", cookies={session_name: session})
    csrf = hidden_fields(await home.text())["csrf"]
    out = await client.post("/owner/logout", data={"csrf": csrf}, cookies={session_name: session},
                            allow_redirects=False)  # fmt: skip
    deleted = out.cookies[session_name]
    # A browser deletes a __Host- cookie only with a Set-Cookie that is itself Secure, Path=/, no Domain.
    assert deleted.value == "" and deleted["secure"] and deleted["path"] == "/" and not deleted["domain"]
    assert deleted["max-age"] == "0" or deleted["expires"]
