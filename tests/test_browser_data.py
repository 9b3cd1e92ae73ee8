"""The owner's data pages in a real browser (headless Chromium, as tests/test_browser.py): a numeric
table charted as SVG, the table downloaded as CSV and read back, a record deleted through its
confirmation page, and every one of these pages, at a desktop's width and a phone's (390 and 360
px), fitting the window with no sideways scroll. Screenshots land in test-output/browser/."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import OWNER, login
from tests.raw_helpers import call, created, new_table
from tests.test_browser import OUTPUT, browser_page, hat  # noqa: F401 -- the fixtures, shared

pytestmark = pytest.mark.slow

DESKTOP = {"width": 1280, "height": 800}
PHONES = ({"width": 390, "height": 844}, {"width": 360, "height": 740})
LONG = "a-field-name-that-goes-on-and-on-without-a-single-space-" * 3

SCALE = {
    "name": "scale", "source": "withings",
    "fields": [{"name": "weight"}, {"name": "note"}, {"name": LONG}],
    "subTables": [{"name": "body", "source": "withings", "fields": [{"name": "fat"}, {"name": "water"}]}],
}  # fmt: skip


async def _fits(page: Any, path: str, name: str) -> None:
    """The page, at each width, scrolls no sideways; screenshots at the desktop's and at 390 px."""
    for size, tag in ((DESKTOP, "desktop"), (PHONES[0], "390"), (PHONES[1], None)):
        await page.set_viewport_size(size)
        await page.goto(path)
        width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], (path, size, width)
        if tag:
            OUTPUT.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(OUTPUT / f"data-{name}-{tag}.png"), full_page=True)


async def test_the_owner_charts_downloads_and_deletes_in_a_browser(
    hat: str,  # noqa: F811
    browser_page: Any,  # noqa: F811
) -> None:
    page = browser_page
    async with aiohttp.ClientSession(base_url=hat) as http:
        token = await login(http, *OWNER)
        scale = await new_table(http, token, SCALE)
        weight, note, long_field = (f["id"] for f in scale["fields"])
        fat = scale["subTables"][0]["fields"][0]["id"]
        records = await created(http, token, "/data/record/values", [
            {"record": {"name": f"weigh-in {i}", "lastUpdated": f"2026-01-{i + 1:02}T07:30:00Z"},
             "values": [{"value": f"{80 - i * 0.4:.1f}", "field": {"id": weight}},
                        {"value": "after a run, with a note long enough to wrap in its cell" if i % 3 else "=1+1",
                         "field": {"id": note}},
                        {"value": "x" * 120, "field": {"id": long_field}},
                        {"value": f"{20 + i % 4}", "field": {"id": fat}}]}
            for i in range(28)
        ])  # fmt: skip
        person = await created(http, token, "/person", {"name": "Me", "personId": "me.hat"})
        weight_kg = next(p for p in (await call(http, "GET", "/property", token))[1] if p["name"] == "weight (kg)")
        await created(http, token, f"/person/{person['id']}/property/dynamic/{weight_kg['id']}",
                      {"relationshipType": "weight", "field": {"id": weight}})  # fmt: skip
        bundle = await created(http, token, "/bundles/contextless", {
            "name": "Weight for my coach",
            "bundleTable": [{"name": "scale", "table": {"id": scale["id"], "name": "scale", "source": "withings"}}],
        })  # fmt: skip
        contextual = await created(http, token, "/bundles/context", {"name": "Me", "entities": [{"entityName": "Me"}]})
    table = f"{hat}/owner/tables/{scale['id']}"

    await page.set_viewport_size(DESKTOP)
    await page.goto(table)
    await page.fill("#password", OWNER[1])
    await page.click("#login")
    await page.wait_for_selector("#grid")

    # The numeric fields are charted: weight and the subtable's fat, not the note.
    charts = await page.eval_on_selector_all(
        "svg.chart", "els => els.map(e => [e.dataset.field, e.querySelector('path.line').getAttribute('d')])"
    )
    assert [int(field) for field, _ in charts] == [weight, fat]
    assert all(d.startswith("M") and d.count("L") == 27 for _, d in charts)
    assert "max 80" in (await page.text_content(f"#chart-{weight}") or "")
    assert " ".join((await page.text_content("#count") or "").split()) == "28 records"

    # The grid pages to older records and back.
    await page.click("#older")
    await page.wait_for_selector("#newer")
    assert await page.locator("#grid tbody tr").count() == 3
    await page.click("#newer")
    await page.wait_for_selector("#older")
    assert await page.locator("#grid tbody tr").count() == 25

    # The CSV download, read back.
    async with page.expect_download() as info:
        await page.click("#download-csv")
    download = await info.value
    assert download.suggested_filename == f"withings-scale-{scale['id']}.csv"
    saved = Path(await download.path())
    text = await asyncio.to_thread(saved.read_text, encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["record id", "record time", "record name", "scale.weight", "scale.note", f"scale.{LONG}",
                       "body.fat", "body.water"]  # fmt: skip
    assert [row[2] for row in rows[1:]] == [f"weigh-in {i}" for i in range(27, -1, -1)]
    assert rows[-1][3:] == ["80.0", "'=1+1", "x" * 120, "20", ""]

    # A record deleted through its confirmation page.
    newest = records[-1]["record"]["id"]
    await page.click(f"#delete-record-{newest}")
    await page.wait_for_selector("#confirm-delete")
    assert await page.text_content("#going-values") == "4"
    confirm = page.url
    await page.click("#confirm-delete")
    await page.wait_for_selector("#grid")
    assert page.url == table
    assert await page.locator(f"#record-{newest}").count() == 0
    assert " ".join((await page.text_content("#count") or "").split()) == "27 records"
    async with aiohttp.ClientSession(base_url=hat) as http:
        assert (await call(http, "GET", f"/data/record/{newest}", token))[0] == 404

    # Deleting the table: the bundle holds it, so the HAT says no, on a page.
    await page.goto(f"{table}/delete")
    assert "Weight for my coach" in (await page.text_content("#bundled") or "")
    await page.click("#confirm-delete")
    await page.wait_for_selector("#cause")
    assert "Bundles still use it: Weight for my coach" in (await page.text_content("#cause") or "")
    conflict = page.url

    for name, path in (
        ("table", table), ("table-window", f"{table}?from=2026-01-05T00:00&to=2026-01-20T00:00"),
        ("table-older", f"{table}?cursor=bad"), ("delete-table", f"{table}/delete"),
        ("delete-record", f"{hat}/owner/records/{records[0]['record']['id']}/delete?back=/owner"),
        ("context", f"{hat}/owner/context"), ("entity", f"{hat}/owner/context/person/{person['id']}"),
        ("bundles", f"{hat}/owner/bundles"), ("bundle", f"{hat}/owner/bundles/contextless/{bundle['id']}"),
        ("bundle-contextual", f"{hat}/owner/bundles/contextual/{contextual['id']}"), ("data", f"{hat}/owner"),
    ):  # fmt: skip
        await _fits(page, path, name)
    assert confirm.startswith(f"{hat}/owner/records/") and conflict == f"{table}/delete"
    await page.goto(f"{hat}/owner/context/person/{person['id']}")
    assert await page.locator(".property table.values tbody tr").count() == 20
    assert "And 7 older values." in (await page.text_content(".property") or "")
