"""Every one of the owner's pages in a real browser (headless Chromium, as tests/test_browser.py),
at a desktop's width and at phones' (390 and 360 px): nothing wider than the screen, no ordinary
word broken across lines (the sign of a column squeezed to a letter's width), the header's links
in a row or in a menu that opens without JavaScript. The pages come from the route table, so a
page added later is visited too, or the test says which page it cannot fill in.

Then a walk through managing the HAT on a phone: the owner creates an app's account on the
Accounts page and reads its password, the app logs in with it over the API and proposes a data
debit, which the owner finds first on the debits page, waiting, and enables; then the owner
approves a service on the Services page and revokes it.

Screenshots land in test-output/browser/ (or $HATD_TEST_OUTPUT/browser/)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hatd.app import create_app
from hatd.routing import HTML, ROUTES_KEY, Route
from tests.conftest import OWNER, login, new_account
from tests.plug_samples import ICS
from tests.raw_helpers import KITCHEN, call, created, new_table
from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS, OUTPUT, SKIP_REASON
from tests.test_cli import free_port

pytestmark = pytest.mark.slow

WIDTHS = {"desktop": (1280, 900), "390": (390, 844), "360": (360, 740)}
# A path variable, with its pattern if it has one (which may hold one level of braces).
VARIABLE = re.compile(r"\{(\w+)(?::[^{}]*(?:\{[^{}]*\}[^{}]*)*)?\}")
# The query a page needs, by route name.
QUERIES = {"hatlogin": "?name=Energy%20Insights%20Dashboard&redirect=https://insights.example/callback%3Ffrom%3Dhat"}

# Ordinary words (2 to 20 letters, standing alone) that the browser laid out over two lines or more.
BROKEN_WORDS = """() => {
  const broken = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const joined = /[\\w\\-.\\/@:%=?&#]/;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent, word = /[A-Za-z]{2,20}/g;
    for (let m = word.exec(text); m; m = word.exec(text)) {
      const before = text[m.index - 1] || " ", after = text[m.index + m[0].length] || " ";
      if (joined.test(before) || joined.test(after)) continue;  // part of a key, an address, a number
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
      if (tops.size > 1) broken.push(m[0]);
    }
  }
  return broken;
}"""
WIDER_THAN_THE_SCREEN = "() => [document.documentElement.scrollWidth, window.innerWidth]"


class Hat:
    def __init__(self, address: str, app: web.Application) -> None:
        self.address = address
        self.app = app


@pytest.fixture
async def hat(database: str, settings: Any, aiohttp_server: Any) -> AsyncIterator[Hat]:
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    app = create_app(settings.replace(database_url=database, hat_address=address))
    await aiohttp_server(app, host="127.0.0.1", port=port)
    yield Hat(address, app)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if CHROMIUM is None:
        pytest.skip(SKIP_REASON)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, chromium_sandbox=False, args=CHROMIUM_FLAGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def _context(browser: Any, width: str, *, javascript: bool = True) -> Any:
    w, h = WIDTHS[width]
    context = await browser.new_context(
        viewport={"width": w, "height": h},
        java_script_enabled=javascript,
        # A long one, as real browsers send: the sessions page shows it.
        user_agent="Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro Build/AP2A.240805.005) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/126.0.6478.122 Mobile Safari/537.36",
    )
    context.set_default_timeout(20_000)
    return context


async def _log_in(page: Any, hat: Hat) -> None:
    await page.goto(f"{hat.address}/owner/login")
    username = page.locator("#username")
    assert await username.get_attribute("autocomplete") == "username"
    assert await username.get_attribute("name") == "username"
    assert not await username.is_visible()
    await page.fill("#password", OWNER[1])
    await page.click("#login")
    await page.wait_for_url(f"{hat.address}/owner")


async def _shot(page: Any, name: str) -> None:
    folder = OUTPUT / "pages"
    folder.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def _fill(hat: Hat, browser: Any) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """A HAT with something on every page, long names included: the values for each page's path
    variables, by route name, and pages in a state worth a look of their own, by name."""
    async with aiohttp.ClientSession(base_url=hat.address) as http:
        owner_token = await login(http, *OWNER)
        kitchen = await new_table(http, owner_token, KITCHEN)
        field = kitchen["fields"][0]["id"]
        records = await created(http, owner_token, "/data/record/values", [
            {"record": {"name": f"monday-{i}"},
             "values": [{"value": "12 kWh, measured at the meter in the hallway " * (i + 1), "field": {"id": field}}]}
            for i in range(3)
        ])  # fmt: skip
        account, app_token = await new_account(
            http, owner_token, name="Energy Insights for the Whole Household", number="longnameofanapplication"
        )
        now = dt.datetime.now(dt.UTC)
        status, debit = await call(http, "POST", "/dataDebit/propose", app_token, {
            "name": "Kitchen electricity on weekends, for the household's monthly energy report",
            "kind": "contextless", "rolling": False, "sell": False, "price": 0,
            "startDate": f"{now - dt.timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}",
            "endDate": f"{now + dt.timedelta(days=30):%Y-%m-%dT%H:%M:%SZ}",
            "bundleContextless": {"name": "Kitchen", "table": {"id": kitchen["id"], "name": "kitchen", "source": "fibaro"}},
        })  # fmt: skip
        assert status == 201, debit
        status, ended = await call(http, "POST", "/dataDebit/propose", app_token, {
            "name": "Last winter's heating", "kind": "contextless", "rolling": False, "sell": False, "price": 0,
            "startDate": f"{now - dt.timedelta(days=90):%Y-%m-%dT%H:%M:%SZ}",
            "endDate": f"{now - dt.timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}",
            "bundleContextless": {"name": "Heating", "table": {"id": kitchen["id"], "name": "kitchen", "source": "fibaro"}},
        })  # fmt: skip
        assert status == 201, ended
        thing = await created(http, owner_token, "/thing", {"name": "The hallway's electricity meter, second floor"})
        contextual = await created(http, owner_token, "/bundles/context", {
            "name": "Everything in the house that measures something", "entities": [{"entityKind": "thing"}],
        })  # fmt: skip
    context = await _context(browser, "desktop")
    page = await context.new_page()
    await _log_in(page, hat)
    # Enabling a debit whose window has ended leads to its page, which warns.
    await page.goto(f"{hat.address}/owner/debits")
    await page.click(f"#enable-{ended['key']}")
    await page.wait_for_selector("#ended-warning")
    assert page.url == f"{hat.address}/owner/debits/{ended['key']}"
    assert await page.text_content(f"#state-{ended['key']}") == "ended"
    # A service approved on its page (a long address).
    await page.goto(f"{hat.address}/owner/services")
    await page.fill("#service-name-input", "Household dashboard")
    await page.fill("#service-origin-input", "https://dashboard.a-rather-long-household-domain-name.example")
    await page.click("#approve")
    await page.wait_for_selector("text=Revoke")
    await context.close()
    values = {
        "owner_table": {"id": str(kitchen["id"])},
        "owner_confirm_table_delete": {"id": str(kitchen["id"])},
        "owner_confirm_record_delete": {"id": str(records[0]["record"]["id"])},
        "owner_entity": {"kind": "thing", "id": str(thing["id"])},
        "owner_bundle_contextless": {"id": str(debit["bundleContextless"]["id"])},
        "owner_bundle_contextual": {"id": str(contextual["id"])},
        "owner_debit": {"key": debit["key"]},
        "*": {"key": debit["key"], "userId": account["userId"]},
    }
    return values, {"debit-ended": f"/owner/debits/{ended['key']}", "error-page": "/owner/tables/999999"}


def page_routes(app: web.Application) -> dict[str, Route]:
    """Every page a browser GETs: the owner's pages and /hatlogin, by route name."""
    return {
        name: route
        for name, route in app[ROUTES_KEY].items()
        if route.method == "GET" and route.produces == HTML and route.status == 200 and ":" not in name
    }


def _path(name: str, route: Route, values: dict[str, dict[str, str]]) -> str:
    """The route's path with its variables filled in; KeyError names one no fixture fills."""

    def value(match: re.Match[str]) -> str:
        variable = match.group(1)
        given = values.get(name, {}).get(variable) or values["*"].get(variable)
        if given is None:
            raise KeyError(f"{name}: nothing fills {{{variable}}} in {route.path}; add it to _fill()")
        return given

    return VARIABLE.sub(value, route.path) + QUERIES.get(name, "")


async def _check(page: Any, url: str, shot: str, problems: list[str]) -> None:
    response = await page.goto(url)
    if response is None or response.status != 200:
        problems.append(f"{shot}: {url} answered {response.status if response else 'nothing'}")
    await _check_layout(page, shot, problems)


async def _check_layout(page: Any, shot: str, problems: list[str]) -> None:
    await _shot(page, shot)
    scroll_width, inner_width = await page.evaluate(WIDER_THAN_THE_SCREEN)
    if scroll_width > inner_width:
        problems.append(f"{shot}: {scroll_width} px wide on a screen of {inner_width} px")
    broken = await page.evaluate(BROKEN_WORDS)
    if broken:
        problems.append(f"{shot}: words broken over lines: {broken[:10]}")
    if await page.locator("header.bar details.menu").count():  # the header of a logged-in page
        wide = await page.locator("nav.wide").is_visible()
        menu = await page.locator("details.menu > summary").is_visible()
        if wide == menu:
            problems.append(f"{shot}: the header shows {'both' if wide else 'neither'} its row of links and its menu")
        header = await page.locator("header.bar").bounding_box()
        if header is None or header["height"] > 80:
            problems.append(f"{shot}: the header is {header and header['height']} px high: its links do not fit")


def test_a_page_no_fixture_fills_in_is_named_not_skipped() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    later = Route("GET", r"/owner/context/{entity:\d+}", handler, name="owner_entity", roles=frozenset(), summary="")
    with pytest.raises(KeyError, match=r"owner_entity: nothing fills \{entity\}"):
        _path("owner_entity", later, {"*": {"key": "k"}})
    assert _path("owner_debit", later.__class__("GET", "/owner/debits/{key}", handler, name="owner_debit",
                 roles=frozenset(), summary=""), {"*": {"key": "k"}}) == "/owner/debits/k"  # fmt: skip


async def test_every_page_fits_the_screen_at_every_width(hat: Hat, browser: Any) -> None:
    values, extras = await _fill(hat, browser)
    routes = page_routes(hat.app)
    paths: dict[str, str] = {}
    uncovered = []
    for name, route in routes.items():
        try:
            paths[name] = _path(name, route, values)
        except KeyError as exc:
            uncovered.append(str(exc.args[0]))
    assert not uncovered, uncovered
    assert {"owner_data", "owner_debits", "owner_accounts", "owner_services", "owner_security"} <= set(paths)

    problems: list[str] = []
    for width in WIDTHS:
        owner = await _context(browser, width)
        stranger = await _context(browser, width)
        try:
            owner_page, stranger_page = await owner.new_page(), await stranger.new_page()
            await _log_in(owner_page, hat)
            for name, path in sorted(paths.items()):
                if not routes[name].session:  # public pages (the login form, /hatlogin): logged out too
                    await _check(stranger_page, f"{hat.address}{path}", f"{width}-{name}-logged-out", problems)
                await _check(owner_page, f"{hat.address}{path}", f"{width}-{name}", problems)
            for name, path in extras.items():
                await owner_page.goto(f"{hat.address}{path}")
                await _check_layout(owner_page, f"{width}-{name}", problems)
            await _check_form_results(owner_page, hat, width, problems)
        finally:
            await owner.close()
            await stranger.close()
    assert not problems, "\n".join(problems)


async def _check_form_results(page: Any, hat: Hat, width: str, problems: list[str]) -> None:
    """The pages a form answers with: an app's new account, and an upload's summary."""
    await page.goto(f"{hat.address}/owner/accounts")
    await page.fill("#account-name", f"Solar panel monitor on the garage roof {width}")
    await page.fill("#account-email", f"solar-panel-monitor-{width}@garage-roof.example")
    await page.click("#create")
    await page.wait_for_selector("#new-password")
    await _check_layout(page, f"{width}-account-created", problems)
    await page.goto(f"{hat.address}/owner")
    await page.set_input_files(
        "#upload-file", files=[{"name": "work.ics", "mimeType": "text/calendar", "buffer": ICS.encode()}]
    )
    await page.click("#upload-submit")
    await page.wait_for_selector("#refused")
    await _check_layout(page, f"{width}-upload-summary", problems)


@pytest.mark.parametrize("width", ["390", "360"])
async def test_the_header_folds_into_a_menu_that_works_without_javascript(hat: Hat, browser: Any, width: str) -> None:
    context = await _context(browser, width, javascript=False)
    try:
        page = await context.new_page()
        await _log_in(page, hat)
        assert not await page.locator("nav.wide").is_visible()
        assert not await page.locator(".menu nav a[href='/owner/accounts']").is_visible()
        await page.click(".menu > summary")
        await _shot(page, f"menu-open-{width}")
        await page.click(".menu nav a[href='/owner/accounts']")
        await page.wait_for_url(f"{hat.address}/owner/accounts")
        assert await page.locator(".menu nav a[aria-current]").get_attribute("href") == "/owner/accounts"
        await page.click(".menu > summary")
        await page.click(".menu nav button:text('Log out')")
        await page.wait_for_url(f"{hat.address}/owner/login")
    finally:
        await context.close()


async def test_on_a_phone_an_app_account_is_made_logs_in_and_its_proposal_is_enabled(hat: Hat, browser: Any) -> None:
    async with aiohttp.ClientSession(base_url=hat.address) as http:
        kitchen = await new_table(http, await login(http, *OWNER), KITCHEN)
    context = await _context(browser, "390")
    problems: list[str] = []
    try:
        page = await context.new_page()
        await _log_in(page, hat)
        # 1. The owner makes an account for the app, and reads its password off the page.
        await page.goto(f"{hat.address}/owner/accounts")
        await page.fill("#account-name", "Energy Insights")
        await page.fill("#account-email", "insights@energy.example")
        await page.check("#role-dataDebit")
        await page.click("#create")
        await page.wait_for_selector("#new-password")
        await _check_layout(page, "walk-01-account-created", problems)
        username = (await page.text_content("#new-username") or "").strip()
        password = (await page.text_content("#new-password") or "").strip()
        assert username == "insights@energy.example" and len(password) == 24

        # 2. The app logs in with it over the API and proposes a data debit.
        async with aiohttp.ClientSession(base_url=hat.address) as http:
            app_token = await login(http, username, password)
            now = dt.datetime.now(dt.UTC)
            status, debit = await call(http, "POST", "/dataDebit/propose", app_token, {
                "name": "Kitchen energy for insights", "kind": "contextless", "rolling": False, "sell": False,
                "price": 0, "startDate": f"{now - dt.timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}",
                "endDate": f"{now + dt.timedelta(days=30):%Y-%m-%dT%H:%M:%SZ}",
                "bundleContextless": {"name": "Kitchen", "table": {"id": kitchen["id"], "name": "kitchen", "source": "fibaro"}},
            })  # fmt: skip
            assert status == 201, debit
            key = debit["key"]
            # A newer debit, decided already, so that "first" means something.
            await _enabled_debit(http, hat, app_token, kitchen, page)

        # 3. The owner finds it first on the debits page, waiting, and enables it.
        await page.goto(f"{hat.address}/owner/debits")
        first = page.locator("article.debit").first
        assert await first.get_attribute("id") == f"debit-{key}"
        assert await page.text_content(f"#state-{key}") == "waiting"
        assert (await page.text_content("#waiting-count") or "").split() == ["1", "proposal", "waiting", "for", "you."]
        await _check_layout(page, "walk-02-debit-waiting", problems)
        await page.click(f"#enable-{key}")
        await page.wait_for_selector(f"#disable-{key}")
        assert await page.text_content(f"#state-{key}") == "active"
        await _check_layout(page, "walk-03-debit-active", problems)

        # 4. The app reads through it.
        async with aiohttp.ClientSession(base_url=hat.address) as http:
            status, values = await call(http, "GET", f"/dataDebit/{key}/values", app_token)
            assert status == 200, values

        # 5. On the Services page, the owner approves a service and revokes it again.
        await page.goto(f"{hat.address}/owner/services")
        await page.fill("#service-name-input", "Dashboard")
        await page.fill("#service-origin-input", "https://dashboard.example")
        await page.click("#approve")
        card = page.locator("article.card", has_text="https://dashboard.example")
        await card.wait_for()
        await _check_layout(page, "walk-04-service-approved", problems)
        await card.locator("button", has_text="Revoke").click()
        await page.wait_for_selector("text=No approved services.")
        assert await page.locator("article.card").count() == 0
    finally:
        await context.close()
    assert not problems, "\n".join(problems)


async def _enabled_debit(
    http: aiohttp.ClientSession, hat: Hat, app_token: str, kitchen: dict[str, Any], page: Any
) -> None:
    """Another proposal of the app's, newer than the one under test, which the owner enables on its
    page: newest first alone would list it before the waiting one."""
    now = dt.datetime.now(dt.UTC)
    status, other = await call(http, "POST", "/dataDebit/propose", app_token, {
        "name": "An older decision", "kind": "contextless", "rolling": False, "sell": False, "price": 0,
        "startDate": f"{now - dt.timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}",
        "endDate": f"{now + dt.timedelta(days=3):%Y-%m-%dT%H:%M:%SZ}",
        "bundleContextless": {"name": "Kitchen too", "table": {"id": kitchen["id"], "name": "kitchen", "source": "fibaro"}},
    })  # fmt: skip
    assert status == 201, other
    await page.goto(f"{hat.address}/owner/debits/{other['key']}")
    await page.click(f"#enable-{other['key']}")
    await page.wait_for_selector(f"#disable-{other['key']}")
