"""The pieces of a table's page that need no server: the grid's columns and cells, the CSV's
formula-safe cells, and the SVG charts (which numbers make a series, where the points land, and
that every text from the data is escaped)."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest

from hatd.web import charts, grid

TREE = {
    "id": 1, "name": "house", "source": "home", "fields": [{"id": 10, "name": "address"}],
    "subTables": [
        {"id": 2, "name": "room", "fields": [{"id": 20, "name": "roomName"}],
         "subTables": [{"id": 3, "name": "appliance", "fields": [{"id": 30, "name": "watts"}], "subTables": []}]},
        {"id": 4, "name": "garden", "fields": [], "subTables": []},
    ],
}  # fmt: skip


def _record(record_id: int, when: str, values: dict[int, list[str]]) -> dict[str, object]:
    """A record as the API's values read gives it, holding `values` by field id (all in one flat tree)."""
    fields = [{"id": fid, "name": f"f{fid}", "values": [{"value": v} for v in vs]} for fid, vs in values.items()]
    return {"id": record_id, "name": f"r{record_id}", "lastUpdated": when,
            "tables": [{"name": "t", "fields": fields, "subTables": []}]}  # fmt: skip


def test_groups_put_each_subtables_fields_under_its_path():
    found = grid.groups(TREE)
    assert [(g.label, [c.name for c in g.columns]) for g in found] == [
        ("house", ["address"]), ("room", ["roomName"]), ("room / appliance", ["watts"]),
    ]  # fmt: skip
    assert [c.path for c in grid.columns(found)] == ["house.address", "room.roomName", "room.appliance.watts"]


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("=1+1", "'=1+1"), ("+cmd", "'+cmd"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
        ("\r=1", "'\r=1"), ("-12.5", "-12.5"), ("+1", "+1"), ("-1e5", "-1e5"), ("plain", "plain"), ("", ""),
        ("a=b", "a=b"),
    ],
)  # fmt: skip
def test_csv_cells_that_a_spreadsheet_would_run_get_a_quote(text, safe):
    assert grid.safe_cell(text) == safe


def test_a_csv_row_joins_several_values_of_a_field_one_a_line():
    cols = grid.columns(grid.groups(TREE))
    record = _record(7, "2026-01-01T00:00:00.000Z", {10: ["=evil"], 30: ["5", "6"]})
    record["name"] = "@me"
    assert grid.csv_header(cols) == ["record id", "record time", "record name", *(c.path for c in cols)]
    assert grid.csv_row(record, cols) == ["7", "2026-01-01T00:00:00.000Z", "'@me", "'=evil", "", "5\n6"]


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3.0), (" -2.5 ", -2.5), ("1e3", 1000.0), (".5", 0.5), ("nan", None), ("inf", None), ("1_000", None),
     ("12 kWh", None), ("", None), ("0x10", None)],
)  # fmt: skip
def test_number_reads_plain_numbers_only(text, value):
    assert charts.number(text) == value


def test_numeric_series_keep_fields_whose_every_value_is_a_number_oldest_first():
    cols = [grid.Column(1, "a", "t.a"), grid.Column(2, "b", "t.b"), grid.Column(3, "c", "t.c")]
    records = [
        _record(2, "2026-01-02T00:00:00.000Z", {1: ["2"], 2: ["x"]}),
        _record(1, "2026-01-01T00:00:00.000Z", {1: ["1", "1.5"], 2: ["3"]}),
    ]
    found = charts.numeric_series(records, cols)
    assert [(s.name, [v for _, v in s.points]) for s in found] == [("t.a", [1.0, 1.5, 2.0])]
    assert found[0].points[0][0] == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_a_line_chart_is_svg_with_its_points_axes_labels_and_escaped_name():
    day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    series = charts.Series('<b>"watts" & co</b>', 5, [(day, 10.0), (day + dt.timedelta(days=1), 30.0),
                                                     (day + dt.timedelta(days=2), 20.0)])  # fmt: skip
    svg = str(charts.line_chart(series, "chart-5"))
    root = ET.fromstring(svg)  # noqa: S314 -- well-formed XML: nothing from the data broke out of its text
    ns = "{http://www.w3.org/2000/svg}"
    assert root.find(f"{ns}title").text == (
        '<b>"watts" & co</b>: 3 values from 01 Jan 2026 to 03 Jan 2026, between 10 and 30'
    )
    assert root.find(f"{ns}path").get("d") == "M8.0,156.0 L200.0,22.0 L392.0,89.0"
    labels = [t.text for t in root.iter(f"{ns}text")]
    assert labels == ["max 30", "min 10", "01 Jan 2026", "03 Jan 2026"]
    assert len(list(root.iter(f"{ns}circle"))) == 3
    assert "<b>" not in svg and "&lt;b&gt;" in svg


def test_a_single_value_or_a_flat_series_sits_in_the_middle():
    day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    svg = str(charts.line_chart(charts.Series("x", 1, [(day, 4.0)]), "c"))
    assert 'd="M200.0,89.0"' in svg and '<circle class="dot" cx="200.0" cy="89.0" r="3"/>' in svg
    many = charts.Series("x", 1, [(day + dt.timedelta(hours=i), 4.0) for i in range(charts.DOTS + 1)])
    svg = str(charts.line_chart(many, "c"))
    path = ET.fromstring(svg)[-1].get("d")  # noqa: S314
    assert "<circle" not in svg and re.fullmatch(r"M8\.0,89\.0( L[\d.]+,89\.0){60}", path)
    with pytest.raises(ValueError):
        charts.line_chart(charts.Series("x", 1, []), "c")
