"""The HAT client for code that is not async: each call runs the async client (hatd.client.aio) on
a private event loop in a thread of its own. One implementation of the API, so both behave alike,
and it works inside a program that already runs a loop (a notebook, a web framework)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from hatd.client.aio import AsyncHat
from hatd.client.models import Entity, Field, JsonObject, NewRecord, Record, Table, TableSpec, Time

T = TypeVar("T")


class Hat:
    """A HAT at `url`, called with `token`; `Hat.login(url, username, password)` gets one. The
    options are AsyncHat's. Close it (or use it in a `with`) to stop its thread."""

    def __init__(self, url: str, token: str | None = None, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hatd-client", daemon=True)
        self._thread.start()
        self._hat = AsyncHat(url, token, **options)

    @classmethod
    def login(cls, url: str, username: str, password: str, **options: Any) -> Hat:
        hat = cls(url, **options)
        try:
            hat.log_in(username, password)
        except BaseException:
            hat.close()
            raise
        return hat

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        if not self._thread.is_alive():
            call.close()
            raise RuntimeError("this Hat is closed")
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    def _iterate(self, pages: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._run(pages.__anext__())  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            if self._thread.is_alive():
                self._run(pages.aclose())  # type: ignore[attr-defined]

    @property
    def token(self) -> str | None:
        return self._hat.token

    @property
    def base(self) -> str:
        return str(self._hat.base)

    def close(self) -> None:
        if self._thread.is_alive():
            self._run(self._hat.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> Hat:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # The same calls as AsyncHat's, in the same order; see there for what each does.

    def log_in(self, username: str, password: str) -> str:
        return self._run(self._hat.log_in(username, password))

    def request(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        return self._run(self._hat.request(method, path, body, **params))

    def find_table(self, name: str, source: str) -> Table | None:
        return self._run(self._hat.find_table(name, source))

    def get_table(self, table_id: int) -> Table:
        return self._run(self._hat.get_table(table_id))

    def sources(self) -> list[Table]:
        return self._run(self._hat.sources())

    def create_table(self, spec: TableSpec) -> Table:
        return self._run(self._hat.create_table(spec))

    def table(self, name: str, source: str, fields: Sequence[str] = (), subtables: Sequence[TableSpec] = ()) -> Table:
        return self._run(self._hat.table(name, source, fields, subtables))

    def ensure_table(self, spec: TableSpec) -> Table:
        return self._run(self._hat.ensure_table(spec))

    def create_field(self, table: Table | int, name: str) -> Field:
        return self._run(self._hat.create_field(table, name))

    def create_records(self, records: Sequence[NewRecord]) -> list[Record]:
        return self._run(self._hat.create_records(records))

    def create_batch(self, records: Sequence[NewRecord]) -> list[Record]:
        return self._run(self._hat.create_batch(records))

    def create_record(self, record: NewRecord) -> Record:
        return self._run(self._hat.create_record(record))

    def add_values(self, record: Record | int, values: Mapping[Field | int, Any]) -> list[JsonObject]:
        return self._run(self._hat.add_values(record, values))

    def table_values(
        self, table: Table | int, *, start: Time | None = None, end: Time | None = None, page_size: int | None = None
    ) -> Iterator[JsonObject]:
        return self._iterate(self._hat.table_values(table, start=start, end=end, page_size=page_size))

    def field_values(
        self, field: Field | int, *, start: Time | None = None, end: Time | None = None, page_size: int | None = None
    ) -> Iterator[JsonObject]:
        return self._iterate(self._hat.field_values(field, start=start, end=end, page_size=page_size))

    def record_values(self, record: Record | int) -> JsonObject:
        return self._run(self._hat.record_values(record))

    def entities(self, kind: str) -> list[Entity]:
        return self._run(self._hat.entities(kind))

    def create_entity(self, kind: str, name: str, *, person_id: str | None = None) -> Entity:
        return self._run(self._hat.create_entity(kind, name, person_id=person_id))

    def entity_values(self, entity: Entity) -> JsonObject:
        return self._run(self._hat.entity_values(entity))

    def link_entities(self, entity: Entity, other: Entity, relationship: str) -> int:
        return self._run(self._hat.link_entities(entity, other, relationship))

    def properties(self, name: str | None = None) -> list[JsonObject]:
        return self._run(self._hat.properties(name))

    def add_property(
        self,
        entity: Entity,
        property_id: int,
        field: Field | int,
        relationship: str,
        record: Record | int | None = None,
    ) -> int:
        return self._run(self._hat.add_property(entity, property_id, field, relationship, record))

    def property_links(self, entity: Entity, *, static: bool = True) -> list[JsonObject]:
        return self._run(self._hat.property_links(entity, static=static))

    def create_contextless_bundle(self, name: str, tables: Mapping[str, Table | int]) -> JsonObject:
        return self._run(self._hat.create_contextless_bundle(name, tables))

    def contextless_bundle(self, bundle_id: int) -> JsonObject:
        return self._run(self._hat.contextless_bundle(bundle_id))

    def contextless_bundle_values(
        self, bundle_id: int, *, start: Time | None = None, end: Time | None = None
    ) -> Iterator[JsonObject]:
        return self._iterate(self._hat.contextless_bundle_values(bundle_id, start=start, end=end))

    def create_contextual_bundle(self, name: str, entities: Sequence[Mapping[str, Any]]) -> JsonObject:
        return self._run(self._hat.create_contextual_bundle(name, entities))

    def contextual_bundle_values(self, bundle_id: int) -> list[JsonObject]:
        return self._run(self._hat.contextual_bundle_values(bundle_id))

    def propose_debit(
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
        return self._run(
            self._hat.propose_debit(
                name, start=start, end=end, contextless=contextless, contextual=contextual,
                rolling=rolling, sell=sell, price=price,
            )
        )  # fmt: skip

    def debit(self, key: str) -> JsonObject:
        return self._run(self._hat.debit(key))

    def debit_values(self, key: str, *, start: Time | None = None, end: Time | None = None) -> Iterator[JsonObject]:
        return self._iterate(self._hat.debit_values(key, start=start, end=end))

    def enable_debit(self, key: str) -> JsonObject:
        return self._run(self._hat.enable_debit(key))

    def disable_debit(self, key: str) -> JsonObject:
        return self._run(self._hat.disable_debit(key))
