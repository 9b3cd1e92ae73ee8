"""The asynchronous HAT client, on aiohttp. It speaks the HAT API as the reference writes it (the
routes the original server served too), so it works against hatd and the original's dialect alike:
log in, find or make tables, store records with their values in batches, read values page by page
following the `Link` header, entities, bundles and data debits.

It retries what a server says is temporary (429 and 503, waiting as `Retry-After` says) and never a
request the server refused as wrong: that raises HatError with the server's message and cause. It
follows no redirect (a 3xx raises HatError with its `location`): one to another origin would take
the account's password or token there."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

from hatd.client.models import (
    ENTITY_KINDS,
    Entity,
    Field,
    HatError,
    JsonObject,
    NewRecord,
    Record,
    Table,
    TableSpec,
    Time,
    time_json,
)

# About a thousand values per request: big enough that a request's own cost is small beside its
# rows, small enough that one refused batch wastes little and no server's body limit is near.
BATCH_VALUES = 1000
TEMPORARY = frozenset({429, 503})
_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)


def next_link(header: str | None) -> str | None:
    """The URL of `rel="next"` in a Link header, if there is one."""
    match = _NEXT.search(header or "")
    return match.group(1) if match else None


def retry_delay(header: str | None, attempt: int) -> float:
    """Seconds to wait before trying again: what Retry-After says (seconds or an HTTP date), or an
    exponential back-off from half a second when it says nothing."""
    if header:
        text = header.strip()
        if text.isdigit():
            return float(text)
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            aware = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
            return max(0.0, float((aware - dt.datetime.now(dt.UTC)).total_seconds()))
    return min(0.5 * 2.0**attempt, 30.0)


def _error_from(status: int, reason: str, text: str, method: str, url: str) -> HatError:
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and ("message" in body or "cause" in body or "error" in body):
        message = str(body.get("message") or body.get("error") or reason)
        return HatError(status, message, str(body.get("cause") or ""), method=method, url=url)
    return HatError(status, reason or "Error", text.strip()[:500], method=method, url=url)


def batches(records: Sequence[NewRecord], limit: int) -> Iterable[Sequence[NewRecord]]:
    """Consecutive runs of records of at most `limit` values each (a bigger record goes alone)."""
    start, count = 0, 0
    for index, record in enumerate(records):
        size = max(len(record.values), 1)
        if index > start and count + size > limit:
            yield records[start:index]
            start, count = index, 0
        count += size
    if start < len(records):
        yield records[start:]


class AsyncHat:
    """A HAT at `url`, called with `token` (see `login` to get one from a username and password).

    `retries` is how often a 429 or 503 is tried again; a wait the server asks for longer than
    `max_wait` seconds is not waited out but raised. `batch_values` caps the values per write."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        retries: int = 5,
        max_wait: float = 120.0,
        timeout: float = 300.0,
        batch_values: int = BATCH_VALUES,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        base = URL(url if "://" in url else f"https://{url}")
        if not base.is_absolute() or base.scheme not in ("http", "https"):
            raise ValueError(f"not a HAT address: {url!r} (give http://host or https://host)")
        self.base = base.with_path(base.path.rstrip("/") or "/").with_query(None).with_fragment(None)
        self.token = token
        self.retries = retries
        self.max_wait = max_wait
        self.batch_values = batch_values
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._own_session = session is None

    # -- life --------------------------------------------------------------------------------

    @classmethod
    async def login(cls, url: str, username: str, password: str, **options: Any) -> AsyncHat:
        """A client holding a token for this account (GET /users/access_token)."""
        hat = cls(url, **options)
        try:
            await hat.log_in(username, password)
        except BaseException:
            await hat.close()
            raise
        return hat

    async def log_in(self, username: str, password: str) -> str:
        body, _ = await self._call(
            "GET", "/users/access_token", headers={"username": username, "password": password}, auth=False
        )
        self.token = str(body["accessToken"])
        return self.token

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> AsyncHat:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    # -- the one way out ---------------------------------------------------------------------

    def _url(self, target: str) -> URL:
        """A path under the HAT's address; or the path and query of a URL the HAT gave (a Link), put
        on the address this client was given, which a proxy in front of the HAT may not know."""
        given = URL(target, encoded=True)
        path = given.raw_path if given.is_absolute() else target.split("?", 1)[0]
        prefix = self.base.raw_path.rstrip("/")
        if not path.startswith(prefix + "/"):
            path = prefix + path
        url = self.base.with_path(path, encoded=True)
        return url.with_query(given.raw_query_string) if given.raw_query_string else url

    async def _call(
        self,
        method: str,
        target: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[Any, Mapping[str, str]]:
        """(the JSON answer, the headers) of a request that succeeded; HatError otherwise."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = self._url(target)
        if params:
            url = url.update_query(params)
        sent = {"Accept": "application/json", **(headers or {})}
        if auth:
            if not self.token:
                raise HatError(0, "Not logged in", "give a token, or log in first", method=method, url=str(url))
            sent["X-Auth-Token"] = self.token
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        if data is not None:
            sent["Content-Type"] = "application/json"
        shown = str(url.with_query(None))
        attempt = 0
        while True:
            try:
                # Never follow a redirect: aiohttp would send the password headers and X-Auth-Token
                # (it strips only Authorization) to whatever origin it names, and a 307 the body again.
                async with self._session.request(
                    method, url, data=data, headers=sent, allow_redirects=False
                ) as response:
                    text = await response.text(errors="replace")
                    status, reason, answer = response.status, response.reason or "", response.headers.copy()
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                # Only a read is safe to send again: a write may have happened before the line dropped.
                if method == "GET" and attempt < self.retries:
                    await asyncio.sleep(retry_delay(None, attempt))
                    attempt += 1
                    continue
                raise HatError(0, "The HAT cannot be reached", str(exc) or type(exc).__name__,
                               method=method, url=shown) from exc  # fmt: skip
            if status in TEMPORARY and attempt < self.retries:
                wait = retry_delay(answer.get("Retry-After"), attempt)
                if wait <= self.max_wait:
                    await asyncio.sleep(wait)
                    attempt += 1
                    continue
            if status >= 400:
                raise _error_from(status, reason, text, method, shown)
            if 300 <= status < 400:
                location = answer.get("Location")
                raise HatError(
                    status, "The HAT answered with a redirect, not followed",
                    f"to {location}: give the HAT's address as it is served" if location else "no Location given",
                    method=method, url=shown, location=location,
                )  # fmt: skip
            try:
                return (json.loads(text) if text.strip() else None), answer
            except ValueError:
                raise HatError(status, "The HAT's answer is not JSON", text[:200], method=method, url=shown) from None

    async def request(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        """Any other route: its JSON answer."""
        return (await self._call(method, path, body=body, params=params or None))[0]

    async def _pages(self, path: str, params: Mapping[str, str]) -> AsyncIterator[Any]:
        """Each page of a paged read, following `Link: <...>; rel="next"` until there is none."""
        target: str | None = path
        query: Mapping[str, str] | None = params
        while target is not None:
            body, headers = await self._call("GET", target, params=query)
            yield body
            target, query = next_link(headers.get("Link")), None

    # -- tables and fields -------------------------------------------------------------------

    async def find_table(self, name: str, source: str) -> Table | None:
        """The table with this name and source, or None."""
        try:
            body, _ = await self._call("GET", "/data/table", params={"name": name, "source": source})
        except HatError as exc:
            if exc.status == 404:
                return None
            raise
        return Table.from_json(body)

    async def get_table(self, table_id: int) -> Table:
        return Table.from_json((await self._call("GET", f"/data/table/{int(table_id)}"))[0])

    async def sources(self) -> list[Table]:
        """The top-level tables."""
        return [Table.from_json(item) for item in (await self._call("GET", "/data/sources"))[0]]

    async def create_table(self, spec: TableSpec) -> Table:
        return Table.from_json((await self._call("POST", "/data/table", body=spec.to_json()))[0])

    async def table(
        self, name: str, source: str, fields: Sequence[str] = (), subtables: Sequence[TableSpec] = ()
    ) -> Table:
        """The table with this name and source, made if there is none; with every field and subtable
        named here, added where missing (fields already there are kept, and not made twice)."""
        return await self.ensure_table(TableSpec(name, source, fields, subtables))

    async def ensure_table(self, spec: TableSpec) -> Table:
        table = await self.find_table(spec.name, spec.source)
        if table is None:
            try:
                return await self.create_table(spec)
            except HatError as exc:
                if exc.status != 409:  # 409: made meanwhile by another writer; take that one
                    raise
                table = await self.find_table(spec.name, spec.source)
                if table is None:
                    raise
        changed = False
        have = {f.name for f in table.fields}
        for name in spec.fields:
            if name not in have:
                await self.create_field(table.id, name)
                have.add(name)
                changed = True
        for sub in spec.subtables:
            existing = next((t for t in table.subtables if t.name == sub.name and t.source == sub.source), None)
            made = await self.ensure_table(sub)
            if existing is None:
                await self._call("POST", f"/data/table/{table.id}/table/{made.id}", body={})
            changed = changed or existing is None or made != existing
        return await self.get_table(table.id) if changed else table

    async def create_field(self, table: Table | int, name: str) -> Field:
        table_id = table.id if isinstance(table, Table) else int(table)
        body, _ = await self._call("POST", "/data/field", body={"name": name, "tableId": table_id})
        return Field.from_json(body)

    # -- records and values ------------------------------------------------------------------

    async def create_records(self, records: Sequence[NewRecord]) -> list[Record]:
        """Stores records with their values, in requests of about `batch_values` values each, in
        order; each request is all or nothing. Returns the stored records in the order given."""
        stored: list[Record] = []
        for batch in batches(records, self.batch_values):
            stored += await self.create_batch(batch)
        return stored

    async def create_batch(self, records: Sequence[NewRecord]) -> list[Record]:
        """One request (POST /data/record/values), all or nothing, whatever its size."""
        if not records:
            return []
        body, _ = await self._call("POST", "/data/record/values", body=[r.to_json() for r in records])
        return [Record.from_json(item["record"]) for item in body]

    async def create_record(self, record: NewRecord) -> Record:
        return (await self.create_batch([record]))[0]

    async def add_values(self, record: Record | int, values: Mapping[Field | int, Any]) -> list[JsonObject]:
        """More values in an existing record."""
        record_id = record.id if isinstance(record, Record) else int(record)
        items = [{"value": v, "field": {"id": k.id if isinstance(k, Field) else int(k)}} for k, v in values.items()]
        body, _ = await self._call("POST", f"/data/record/{record_id}/values", body=items)
        return list(body)

    def _window(self, start: Time | None, end: Time | None, limit: int | None) -> dict[str, str]:
        query: dict[str, str] = {}
        if start is not None:
            query["starttime"] = str(time_json(start))
        if end is not None:
            query["endtime"] = str(time_json(end))
        if limit is not None:
            query["limit"] = str(limit)
        return query

    async def table_values(
        self, table: Table | int, *, start: Time | None = None, end: Time | None = None, page_size: int | None = None
    ) -> AsyncIterator[JsonObject]:
        """Each record of a table with its values (newest first), over every page."""
        table_id = table.id if isinstance(table, Table) else int(table)
        async for page in self._pages(f"/data/table/{table_id}/values", self._window(start, end, page_size)):
            for item in page or []:
                yield item

    async def field_values(
        self, field: Field | int, *, start: Time | None = None, end: Time | None = None, page_size: int | None = None
    ) -> AsyncIterator[JsonObject]:
        """Each value of a field (newest record first), over every page."""
        field_id = field.id if isinstance(field, Field) else int(field)
        async for page in self._pages(f"/data/field/{field_id}/values", self._window(start, end, page_size)):
            for value in (page or {}).get("values") or []:
                yield value

    async def record_values(self, record: Record | int) -> JsonObject:
        record_id = record.id if isinstance(record, Record) else int(record)
        return dict((await self._call("GET", f"/data/record/{record_id}/values"))[0])

    # -- context -----------------------------------------------------------------------------

    @staticmethod
    def _kind(kind: str) -> str:
        if kind not in ENTITY_KINDS:
            raise ValueError(f"not an entity kind: {kind!r} (one of {', '.join(ENTITY_KINDS)})")
        return kind

    async def entities(self, kind: str) -> list[Entity]:
        body, _ = await self._call("GET", f"/{self._kind(kind)}")
        return [Entity.from_json(kind, item) for item in body]

    async def create_entity(self, kind: str, name: str, *, person_id: str | None = None) -> Entity:
        new: JsonObject = {"name": name} if person_id is None else {"name": name, "personId": person_id}
        body, _ = await self._call("POST", f"/{self._kind(kind)}", body=new)
        return Entity.from_json(kind, body)

    async def entity_values(self, entity: Entity) -> JsonObject:
        body, _ = await self._call("GET", f"/{entity.kind}/{entity.id}/values")
        return dict(body[0] if isinstance(body, list) else body)

    async def link_entities(self, entity: Entity, other: Entity, relationship: str) -> int:
        """Links an entity to another (an event to its location, say); returns the link's id."""
        path = f"/{entity.kind}/{entity.id}/{other.kind}/{other.id}"
        body, _ = await self._call("POST", path, body={"relationshipType": relationship})
        return int(body["id"])

    async def properties(self, name: str | None = None) -> list[JsonObject]:
        """The context properties; with a name, the one of that name (none: [])."""
        try:
            body, _ = await self._call("GET", "/property", params={"name": name} if name else None)
        except HatError as exc:
            if exc.status == 404 and name:
                return []
            raise
        found = [body] if isinstance(body, dict) else list(body)
        # A server that does not know ?name= answers the whole list: keep the ones asked for.
        return [item for item in found if item.get("name") == name] if name else found

    async def add_property(
        self,
        entity: Entity,
        property_id: int,
        field: Field | int,
        relationship: str,
        record: Record | int | None = None,
    ) -> int:
        """Links an entity to a property over a field: static (one value) with a record, else dynamic."""
        field_id = field.id if isinstance(field, Field) else int(field)
        link: JsonObject = {"relationshipType": relationship, "field": {"id": field_id}}
        kind = "dynamic"
        if record is not None:
            link["record"] = {"id": record.id if isinstance(record, Record) else int(record)}
            kind = "static"
        body, _ = await self._call("POST", f"/{entity.kind}/{entity.id}/property/{kind}/{property_id}", body=link)
        return int(body["id"])

    async def property_links(self, entity: Entity, *, static: bool = True) -> list[JsonObject]:
        kind = "static" if static else "dynamic"
        return list((await self._call("GET", f"/{entity.kind}/{entity.id}/property/{kind}"))[0])

    # -- bundles and data debits -------------------------------------------------------------

    async def create_contextless_bundle(self, name: str, tables: Mapping[str, Table | int]) -> JsonObject:
        """A bundle of whole tables, each under a name of its own (the original server's shape,
        which hatd takes too)."""
        items = [
            {"name": label, "bundleTable": {"name": label, "table": {"id": t.id if isinstance(t, Table) else int(t)}}}
            for label, t in tables.items()
        ]
        return dict((await self._call("POST", "/bundles/contextless", body={"name": name, "tables": items}))[0])

    async def contextless_bundle(self, bundle_id: int) -> JsonObject:
        return dict((await self._call("GET", f"/bundles/contextless/{int(bundle_id)}"))[0])

    async def contextless_bundle_values(
        self, bundle_id: int, *, start: Time | None = None, end: Time | None = None
    ) -> AsyncIterator[JsonObject]:
        """Each page of a contextless bundle's data ({"dataGroups": ...}), following `Link`."""
        async for page in self._pages(f"/bundles/contextless/{int(bundle_id)}/values", self._window(start, end, None)):
            yield page

    async def create_contextual_bundle(self, name: str, entities: Sequence[Mapping[str, Any]]) -> JsonObject:
        """A bundle of entities: selectors such as {"entityKind": "event"} or {"entityName": "Home",
        "properties": [...]}."""
        body = {"name": name, "entities": [dict(selector) for selector in entities]}
        return dict((await self._call("POST", "/bundles/context", body=body))[0])

    async def contextual_bundle_values(self, bundle_id: int) -> list[JsonObject]:
        return list((await self._call("GET", f"/bundles/context/{int(bundle_id)}/values"))[0])

    async def propose_debit(
        self,
        name: str,
        *,
        start: Time,
        end: Time,
        contextless: Mapping[str, Any] | int | None = None,
        contextual: Mapping[str, Any] | int | None = None,
        rolling: bool = False,
        sell: bool = False,
        price: float = 0,
    ) -> JsonObject:
        """Proposes a data debit over one bundle: an existing one by id, or a new one's body."""
        if (contextless is None) == (contextual is None):
            raise ValueError("give one bundle: contextless or contextual")
        debit: JsonObject = {
            "name": name, "startDate": time_json(start), "endDate": time_json(end),
            "rolling": rolling, "sell": sell, "price": price,
            "kind": "contextless" if contextless is not None else "contextual",
        }  # fmt: skip
        bundle = contextless if contextless is not None else contextual
        key = "bundleContextless" if contextless is not None else "bundleContextual"
        debit[key] = {"id": bundle} if isinstance(bundle, int) else dict(bundle or {})
        return dict((await self._call("POST", "/dataDebit/propose", body=debit))[0])

    async def debit(self, key: str) -> JsonObject:
        return dict((await self._call("GET", f"/dataDebit/{key}"))[0])

    async def debit_values(
        self, key: str, *, start: Time | None = None, end: Time | None = None
    ) -> AsyncIterator[JsonObject]:
        """Each page of what a debit shares, following `Link`."""
        async for page in self._pages(f"/dataDebit/{key}/values", self._window(start, end, None)):
            yield page

    async def enable_debit(self, key: str) -> JsonObject:
        return dict((await self._call("PUT", f"/dataDebit/{key}/enable"))[0])

    async def disable_debit(self, key: str) -> JsonObject:
        return dict((await self._call("PUT", f"/dataDebit/{key}/disable"))[0])
