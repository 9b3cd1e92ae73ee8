"""Every route writes its JSON alike: PostgreSQL builds most bodies (json_build_object, json_agg:
`{"id" : 1, "name" : "x"}`), and the bodies Python builds (errors, tokens, acknowledgements) are
spaced the same way."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import OWNER, auth
from tests.raw_helpers import new_table

# A JSON string literal, whatever it holds (spacing inside strings is data, not style).
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def spacing(text: str) -> set[str]:
    """The separators a JSON text uses between a key and its value and between items."""
    skeleton = STRING.sub("s", text)
    return set(re.findall(r"\s*[:,]\s*", skeleton))


async def test_bodies_built_by_python_and_by_postgresql_are_spaced_alike(client: Any, owner_token: str) -> None:
    table = await new_table(client, owner_token, {"name": "k", "source": "s", "fields": [{"name": "f"}]})
    proposed = await client.post("/dataDebit/propose", headers=auth(owner_token), json={
        "name": "d", "kind": "contextless", "rolling": False, "sell": False, "price": 0,
        "startDate": "2020-01-01T00:00:00Z", "endDate": "2030-01-01T00:00:00Z",
        "bundleContextless": {"name": "b", "table": {"id": table["id"], "name": "k"}},
    })  # fmt: skip
    assert proposed.status == 201, await proposed.text()
    key = (await proposed.json())["key"]
    bodies = {
        "token (Python)": await client.get("/users/access_token", headers={"username": OWNER[0], "password": OWNER[1]}),
        "error (Python)": await client.get("/data/nothing", headers=auth(owner_token)),
        "health (Python)": await client.get("/health"),
        "table (PostgreSQL)": await client.get(f"/data/table/{table['id']}", headers=auth(owner_token)),
        "accounts (PostgreSQL)": await client.get("/users/user", headers=auth(owner_token)),
        "proposed debit (PostgreSQL)": proposed,
        "debit (PostgreSQL)": await client.get(f"/dataDebit/{key}", headers=auth(owner_token)),
        "debits (PostgreSQL)": await client.get("/dataDebit", headers=auth(owner_token)),
    }
    seen = {name: spacing(await response.text()) for name, response in bodies.items()}
    assert seen == {name: {" : ", ", "} for name in bodies}, seen
