"""Helpers of the test_web_* modules: reading forms out of the owner's pages and logging in
through the login form, as a browser would."""

from __future__ import annotations

import html
import re
from typing import Any

from aiohttp.test_utils import TestClient

from hatd.web import sessions
from tests.conftest import OWNER

# The cookies of the test HAT (http://hat.test, the test settings' address).
SESSION_COOKIE, LOGIN_COOKIE = sessions.cookie_names("http://hat.test")

_HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def hidden_fields(page: str) -> dict[str, str]:
    """The hidden fields of a page's forms (the first of each name)."""
    fields: dict[str, str] = {}
    for name, value in _HIDDEN.findall(page):
        fields.setdefault(name, html.unescape(value))
    return fields


async def page_login(client: TestClient[Any, Any], next_path: str = "/owner", password: str = OWNER[1]) -> Any:
    """Fills in and posts the owner's login form; returns the (unfollowed) answer to the POST."""
    form_page = await client.get("/owner/login", params={"next": next_path})
    assert form_page.status == 200, await form_page.text()
    fields = hidden_fields(await form_page.text())
    return await client.post("/owner/login", data={**fields, "password": password}, allow_redirects=False)


async def logged_in(client: TestClient[Any, Any]) -> str:
    """Logs the owner in; returns the session's CSRF token (from the page the login leads to)."""
    response = await page_login(client)
    assert response.status == 303, await response.text()
    home = await client.get("/owner")
    assert home.status == 200, await home.text()
    return hidden_fields(await home.text())["csrf"]
