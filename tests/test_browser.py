"""Login with HAT and the owner's debits page in a real browser: headless Chromium (Debian's
package, which `make test` installs when it can), driven by Playwright.

An app on localhost sends the browser to the HAT's /hatlogin; the owner logs in and clicks the
service's icon; the app receives the token and verifies it against the HAT's /publickey. Then the
owner enables the app's proposed data debit on the debits page and the app's
/dataDebit/{key}/values call succeeds; disabling it makes the call fail. Then a Rumpel-like app on
another origin, which the owner approves on the Services page, gets an owner token from /hatlogin
and its page's own script calls the API with it (CORS in a real browser) until the owner revokes it.
A screenshot of each page lands in test-output/browser/ (or $HATD_TEST_OUTPUT/browser/)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from yarl import URL

from hatd.app import create_app
from tests.conftest import OWNER, auth, login, new_account
from tests.raw_helpers import KITCHEN, call, created, new_table
from tests.test_cli import free_port

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip
ROOT = Path(__file__).resolve().parent.parent
OUTPUT = Path(os.environ.get("HATD_TEST_OUTPUT", ROOT / "test-output")) / "browser"


def chromium_path() -> str | None:
    given = os.environ.get("HATD_CHROMIUM")
    if given:
        return given
    return next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)


CHROMIUM = chromium_path()
SKIP_REASON = (
    "BROWSER TESTS SKIPPED: no Chromium found. `make test` installs Debian's chromium when it runs as root "
    "with apt-get; otherwise install it (apt-get install chromium) or point HATD_CHROMIUM at a Chromium binary."
)


class ExampleApp:
    """A third-party service on localhost that uses Login with HAT and a data debit."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.callback = f"{self.base}/callback?from=hat"
        self.hat = ""
        self.app_token = ""
        self.debit_key = ""
        self.verified: dict[str, Any] = {}

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.home)
        app.router.add_get("/callback", self.receive_token)
        app.router.add_get("/data", self.read_data)
        return app

    async def home(self, request: web.Request) -> web.Response:
        link = URL(f"{self.hat}/hatlogin").with_query(name="Energy Insights", redirect=self.callback)
        return _html(f'<h1>Energy Insights</h1><a id="login" href="{link}">Log in with your HAT</a>')

    async def receive_token(self, request: web.Request) -> web.Response:
        token = request.query["token"]
        issuer = jwt.decode(token, options={"verify_signature": False})["iss"]
        # As the original HAT's clients do: <protocol>://<iss>/publickey.
        async with aiohttp.ClientSession() as http, http.get(f"http://{issuer}/publickey") as response:
            public_key = await response.text()
        self.verified = jwt.decode(token, public_key, algorithms=["RS256"], issuer=self.hat.split("://")[1])
        kept = request.query.get("from")
        return _html(f'<h1>Welcome</h1><p id="verified">Verified {self.verified["iss"]} '
                     f'({self.verified["accessScope"]}) from={kept}</p>')  # fmt: skip

    async def read_data(self, request: web.Request) -> web.Response:
        url = f"{self.hat}/dataDebit/{self.debit_key}/values"
        async with aiohttp.ClientSession() as http, http.get(url, headers=auth(self.app_token)) as response:
            body = await response.json()
        shown = body.get("cause", "") if response.status != 200 else f"{body['name']}: data received"
        return _html(f'<h1>Your data</h1><p id="status">{response.status}</p><p id="detail">{shown}</p>')


def _html(body: str) -> web.Response:
    return web.Response(text=f"<!doctype html><html><body>{body}</body></html>", content_type="text/html")


@pytest.fixture
async def hat(database: str, settings: Any, aiohttp_server: Any) -> AsyncIterator[str]:
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    app = create_app(settings.replace(database_url=database, hat_address=address))
    await aiohttp_server(app, host="127.0.0.1", port=port)
    yield address


@pytest.fixture
async def browser_page() -> AsyncIterator[Any]:
    if CHROMIUM is None:
        pytest.skip(SKIP_REASON)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, chromium_sandbox=False, args=CHROMIUM_FLAGS
        )
        try:
            page = await browser.new_page(viewport={"width": 420, "height": 860})  # a phone's width
            page.set_default_timeout(20_000)
            yield page
        finally:
            await browser.close()


async def _shot(page: Any, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


async def test_login_with_hat_and_a_debit_in_a_browser(hat: str, aiohttp_server: Any, browser_page: Any) -> None:
    page = browser_page
    example = ExampleApp(free_port())
    example.hat = hat
    await aiohttp_server(example.application(), host="127.0.0.1", port=int(example.base.rsplit(":", 1)[1]))

    # The app proposes a data debit over the kitchen table, with its own dataDebit account.
    async with aiohttp.ClientSession(base_url=hat) as http:
        owner_token = await login(http, *OWNER)
        kitchen = await new_table(http, owner_token, KITCHEN)
        field = kitchen["fields"][0]["id"]
        await created(http, owner_token, "/data/record/values",
                      [{"record": {"name": "monday"}, "values": [{"value": "12 kWh", "field": {"id": field}}]}])  # fmt: skip
        _, example.app_token = await new_account(http, owner_token, name="Energy Insights", number="ei")
        now = dt.datetime.now(dt.UTC)
        status, debit = await call(http, "POST", "/dataDebit/propose", example.app_token, {
            "name": "Kitchen energy for insights", "kind": "contextless", "rolling": False, "sell": False,
            "price": 0, "startDate": f"{now - dt.timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}",
            "endDate": f"{now + dt.timedelta(days=30):%Y-%m-%dT%H:%M:%SZ}",
            "bundleContextless": {"name": "Kitchen", "table": {"id": kitchen["id"], "name": "kitchen", "source": "fibaro"}},
        })  # fmt: skip
        assert status == 201, debit
        example.debit_key = debit["key"]

    # 1. The app sends the browser to /hatlogin.
    await page.goto(example.base)
    await _shot(page, "01-app")
    await page.click("#login")
    # 2. No session yet: the HAT's login page.
    await page.wait_for_selector("#password")
    assert page.url.startswith(f"{hat}/hatlogin?")
    await _shot(page, "02-hat-login")
    await page.fill("#password", "wrong password")
    await page.click("#login")
    assert await page.text_content("#error") == "Wrong password."
    await page.fill("#password", OWNER[1])
    await page.click("#login")
    # 3. The service's icon, its name and address.
    await page.wait_for_selector("#service")
    assert await page.text_content("#service-name") == "Energy Insights"
    assert await page.text_content("#service-address") == example.callback
    await _shot(page, "03-hatlogin-service")
    # 4. Clicking the icon returns to the app with a token, which it verifies against /publickey.
    await page.click("#service")
    await page.wait_for_selector("#verified")
    assert await page.text_content("#verified") == f"Verified {hat.split('://')[1]} (validate) from=hat"
    assert example.verified["resource"] == example.callback
    await _shot(page, "04-app-verified")

    # The debit is proposed but not enabled: the app's read fails.
    await page.goto(f"{example.base}/data")
    assert await page.text_content("#status") == "403"
    assert await page.text_content("#detail") == "The owner has not enabled this data debit"

    # The owner (still logged in) enables it on the debits page.
    await page.goto(f"{hat}/owner/debits")
    await page.wait_for_selector(f"#enable-{example.debit_key}")
    await _shot(page, "05-debits-proposed")
    await page.click(f"#enable-{example.debit_key}")
    await page.wait_for_selector(f"#disable-{example.debit_key}")
    await _shot(page, "06-debits-enabled")

    await page.goto(f"{example.base}/data")
    assert await page.text_content("#status") == "200"
    assert await page.text_content("#detail") == "Kitchen energy for insights: data received"
    await _shot(page, "07-app-reads")

    # Disabled again: the app's call fails.
    await page.goto(f"{hat}/owner/debits/{example.debit_key}")
    await page.click(f"#disable-{example.debit_key}")
    await page.wait_for_selector(f"#enable-{example.debit_key}")
    assert "values" in (await page.text_content("#log") or "")
    await _shot(page, "08-debit-log")
    await page.goto(f"{example.base}/data")
    assert await page.text_content("#status") == "403"
    await _shot(page, "09-app-refused")

    # The owner's other pages render in the browser too.
    for name, path in (("10-data", "/owner"), ("11-table", f"/owner/tables/{kitchen['id']}"),
                       ("12-accounts", "/owner/accounts")):  # fmt: skip
        await page.goto(f"{hat}{path}")
        assert await page.title()
        await _shot(page, name)


class BrowserApp:
    """A Rumpel-like app on its own origin: the owner's token arrives on its redirect, and the page's
    own script calls the HAT's API with it, cross-origin, as Rumpel does."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.hat = ""

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.home)
        app.router.add_get("/dashboard", self.dashboard)
        return app

    async def home(self, request: web.Request) -> web.Response:
        # Rumpel's login: the redirect is not even URL-encoded.
        return _html(f'<a id="login" href="{self.hat}/hatlogin?name=Dashboard&redirect={self.base}/dashboard">'
                     "Log in with your HAT</a>")  # fmt: skip

    async def dashboard(self, request: web.Request) -> web.Response:
        script = """
const token = new URLSearchParams(location.search).get('token');
const iss = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).iss;
fetch('http://' + iss + '/data/sources', {headers: {'X-Auth-Token': token, 'Content-Type': 'application/json'}})
  .then(r => r.json().then(body => { document.getElementById('status').textContent = r.status;
                                     document.getElementById('body').textContent = JSON.stringify(body); }))
  .catch(e => { document.getElementById('status').textContent = 'blocked: ' + e; });
"""
        return _html(f'<h1>Dashboard</h1><p id="status">waiting</p><p id="body"></p><script>{script}</script>')


@pytest.fixture
async def open_hat(database: str, settings: Any, aiohttp_server: Any) -> AsyncIterator[str]:
    """A HAT with the default CORS setting (any origin)."""
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    app = create_app(settings.replace(database_url=database, hat_address=address, cors_origins="*"))
    await aiohttp_server(app, host="127.0.0.1", port=port)
    yield address


async def test_an_approved_browser_app_acts_as_the_owner_until_revoked(
    open_hat: str, aiohttp_server: Any, browser_page: Any
) -> None:
    page, hat = browser_page, open_hat
    app = BrowserApp(free_port())
    app.hat = hat
    await aiohttp_server(app.application(), host="127.0.0.1", port=int(app.base.rsplit(":", 1)[1]))
    async with aiohttp.ClientSession(base_url=hat) as http:
        await new_table(http, await login(http, *OWNER), KITCHEN)

    # The owner approves the app on the Services page.
    await page.goto(f"{hat}/owner/services")
    await page.fill("#password", OWNER[1])
    await page.click("#login")
    await page.wait_for_selector("#approve")
    await page.fill("#service-name-input", "Dashboard")
    await page.fill("#service-origin-input", app.base)
    await page.click("#approve")
    await page.wait_for_selector("text=Revoke")
    await _shot(page, "13-services-approved")

    # Login with HAT says the app will act as the owner, and the app's own script then calls the API.
    await page.goto(app.base)
    await page.click("#login")
    await page.wait_for_selector("#acts-as-owner")
    assert "Dashboard will act as you." in (await page.text_content("#acts-as-owner") or "")
    await _shot(page, "14-hatlogin-approved")
    await page.click("#service")
    await page.wait_for_function("document.getElementById('status').textContent !== 'waiting'")
    assert await page.text_content("#status") == "200"
    assert '"name":"kitchen"' in (await page.text_content("#body") or "")
    await _shot(page, "15-app-as-owner")

    # Revoked: the same token, from the same page, is refused.
    dashboard = page.url
    await page.goto(f"{hat}/owner/services")
    await page.click("text=Revoke")
    await page.wait_for_selector("#approve")
    await page.goto(dashboard)
    await page.wait_for_function("document.getElementById('status').textContent !== 'waiting'")
    assert await page.text_content("#status") == "401"
    assert "revoked" in (await page.text_content("#body") or "")


async def test_the_owner_uploads_a_calendar_in_a_browser(hat: str, browser_page: Any, tmp_path: Path) -> None:
    from tests.plug_samples import ICS

    calendar = tmp_path / "work.ics"
    calendar.write_text(ICS)
    page = browser_page
    await page.goto(f"{hat}/owner")
    await page.fill("#password", OWNER[1])
    await page.click("#login")
    await page.wait_for_selector("#upload-file")
    await page.set_input_files("#upload-file", str(calendar))
    await page.click("#upload-submit")
    await page.wait_for_selector("#upload-summary")
    assert " ".join((await page.text_content("#upload-summary") or "").split()) == (
        "3 new records, 0 already there, 3 refused; 4 entities made."
    )
    assert "VEVENT on line 68: it has no UID" in (await page.text_content("#refused") or "")
    await _shot(page, "08-upload-summary")
    await page.click("text=Back to your data")
    await page.wait_for_selector("text=events")
    await _shot(page, "09-data-with-events")
