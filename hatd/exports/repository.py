"""The whole HAT as one JSON Lines document (docs/export.md): out as a consistent snapshot, streamed
in flat memory; back in, into an empty HAT, in one transaction, also streamed. Takes a connection;
knows nothing of HTTP, files or terminals."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from hatd import db
from hatd.context.repository import MAY_LINK_TO

Q = db.queries("exports")

FORMAT = "hatd-export"
# 2: the section bundle_datasets, and a last line of SHA-256 digests, per section and of the whole
# (docs/export.md). Version 1 files, which have neither, are still imported.
VERSION = 2
READABLE_VERSIONS = (1, 2)
DIGEST = "sha256"
MEDIA_TYPE = "application/x-ndjson"

# The file's sections: one per table, every table before the tables that refer to it. Never
# exported: signing_keys (the HAT's private key), schema_migrations (the header has the version)
# web_sessions (the owner's browser sessions: they belong to a browser, not to the data) and
# approved_services and approval_grants (which apps may act as the owner, and the debits they enabled
# doing so: trust given to apps at one address does not travel with the data into another HAT; the
# owner approves them again there), and served_address (where this copy of the HAT was last served,
# which the export's header names).
SECTIONS = (
    "accounts",
    "system_types",
    "system_type_links",
    "system_units",
    "system_properties",
    "person_relationship_types",
    "data_tables",
    "data_table_links",
    "data_fields",
    "data_records",
    "data_values",
    "entities",
    "entity_links",
    "entity_types",
    "entity_properties",
    "bundles_contextless",
    "bundle_tables",
    "bundle_slices",
    "bundle_slice_conditions",
    "bundles_contextual",
    "bundle_entity_selections",
    "bundle_property_selections",
    "data_debits",
    "data_debit_log",
    # Added in version 2, after every section it refers to.
    "bundle_datasets",
)
SECTIONS_OF = {2: SECTIONS, 1: SECTIONS[:-1]}

# COPY's CSV format with a quote and a delimiter that JSON text never holds raw (row_to_json escapes
# every control character) passes each line through untouched: no per-row work in Python at all,
# where COPY's text format would double every backslash.
_COPY_OPTIONS: dict[str, Any] = {"format": "csv", "delimiter": "\x02", "quote": "\x01"}
# One COPY must not be cut short by the pool's command timeout while a slow client reads a big HAT.
_COPY_TIMEOUT = 7 * 24 * 3600.0
# The longest line an import reads: 64 MiB. The API's largest row is a value of a request body of
# HATD_MAX_BODY (10 MiB by default), which JSON may write six times over (a control character is
# \u0001); a longer line is refused, naming it, before it is read whole.
MAX_LINE_BYTES = 64 * 1024 * 1024
# The highest next id a sequence may be set to: 2^62 leaves a HAT 2^62 ids before the bigint
# maximum, where a header (or an id) near that maximum would leave every later insert failing.
MAX_NEXT_ID = 2**62
# An import sends rows to PostgreSQL in batches of at most this many rows or bytes.
BATCH_ROWS = 5_000
BATCH_BYTES = 4 * 1024 * 1024
# The tables of the bulk of a HAT's rows, whose indexes that refuse nothing (not unique, behind no
# constraint) an import drops first and makes again once every row is in: building an index from
# the whole table is several times faster than keeping it up to date row by row. Their primary keys
# and foreign keys stay, refusing a bad line as it goes in. lock_hat locks them first, and wholly.
REBUILT_INDEX_TABLES = ("data_records", "data_values")
# Memory for each of those index builds (maintenance_work_mem, for the import's transaction only).
INDEX_BUILD_MEMORY = "256MB"
# The foreign keys an import drops first and adds again once every row is in (which checks all rows
# in one join): row by row, as triggers, they cost more than all the rest of inserting a value. The
# table's import query checks them instead, a batch at a time, naming the first line that breaks
# one, as the constraint itself would (import_data_values in sql/queries/exports.sql).
CHECKED_FOREIGN_KEYS = ("data_values_field_id_fkey", "data_values_record_id_fkey")

_SECTION_KEY = re.compile(rb'\{\s*"section"\s*:\s*"([A-Za-z_]{1,64})"')

Write = Callable[[bytes], Awaitable[None]]


class Tracker(Protocol):
    """What follows an export or import as it goes (the command line's progress bar)."""

    def start(self, total_rows: int) -> None: ...

    def advance(self, section: str, rows: int) -> None: ...


class ExportError(RuntimeError):
    """An export or import that cannot go on; the message says why, for the person running it."""


class ImportRefused(ExportError):
    """The file cannot be imported into this HAT; nothing was changed."""


@dataclass(frozen=True)
class Header:
    schema_version: int
    hat: str
    # (section, rows, next id of its sequence or None), in file order.
    sections: list[tuple[str, int, int | None]]
    version: int = VERSION

    @property
    def rows(self) -> int:
        return sum(rows for _, rows, _ in self.sections)


# -- out ---------------------------------------------------------------------------------------


async def export_hat(conn: asyncpg.Connection, issuer: str, write: Write, tracker: Tracker | None = None) -> int:
    """Writes the whole HAT to `write`, a line at a time as PostgreSQL makes them, from one
    REPEATABLE READ snapshot; returns the number of rows written."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(Q.export_session)
        header: str = await conn.fetchval(Q.header, FORMAT, VERSION, issuer)
        counts = {s["name"]: s["rows"] for s in json.loads(header)["sections"]}
        if tracker is not None:
            tracker.start(sum(counts.values()))
        whole = hashlib.sha256(header.encode() + b"\n")
        await write(header.encode() + b"\n")
        digests = {}
        for section in SECTIONS:
            digest = hashlib.sha256()
            await _copy_section(conn, section, write, tracker, (digest, whole))
            digests[section] = digest.hexdigest()
        await write(digest_line(digests, whole.hexdigest()))
    return sum(counts.values())


def digest_line(sections: dict[str, str], whole: str) -> bytes:
    """The last line of a version 2 export: each section's SHA-256 (of its lines, newlines
    included) and the whole file's before this line."""
    listed = [{"name": name, DIGEST: sections[name]} for name in SECTIONS]
    return json.dumps({"digests": DIGEST, "sections": listed, DIGEST: whole}, separators=(",", ":")).encode() + b"\n"


async def _copy_section(
    conn: asyncpg.Connection,
    section: str,
    write: Write,
    tracker: Tracker | None,
    hashes: tuple[Any, ...] = (),
) -> None:
    async def sink(chunk: bytes) -> None:
        for digest in hashes:
            digest.update(chunk)
        await write(chunk)
        if tracker is not None:
            tracker.advance(section, chunk.count(b"\n"))

    query = getattr(Q, f"export_{section}").rstrip(";")  # COPY (query) takes no semicolon
    await conn.copy_from_query(query, output=sink, timeout=_COPY_TIMEOUT, **_COPY_OPTIONS)


# -- in ----------------------------------------------------------------------------------------


def read_header(line: bytes | None, schema_version: int) -> Header:
    """The header of an export, checked against this format and the target's schema version."""
    if line is None or not line.strip():
        raise ImportRefused("line 1: the file is empty, not a hatd export")
    try:
        header = json.loads(line)
    except ValueError:
        raise ImportRefused("line 1: not a hatd export header (not JSON)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ImportRefused(f'line 1: not a hatd export header (no "format": "{FORMAT}")')
    version = header.get("version")
    if version not in READABLE_VERSIONS or type(version) is not int:
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise ImportRefused(f"line 1: export format version {version!r}; this hatd reads versions {readable}")
    theirs = header.get("schemaVersion")
    if type(theirs) is not int or theirs < 1:
        raise ImportRefused(f"line 1: schemaVersion {theirs!r} is not a migration number")
    if theirs > schema_version:
        raise ImportRefused(
            f"line 1: the file comes from a newer hatd (schema version {theirs}, this HAT has {schema_version}): "
            f"import it with a hatd at least as new"
        )
    hat = header.get("hat")
    if not isinstance(hat, str):
        raise ImportRefused('line 1: "hat" (the exporting HAT\'s address) is missing')
    sections = header.get("sections")
    if not isinstance(sections, list):
        sections = []
    names = [s.get("name") if isinstance(s, dict) else None for s in sections]
    if tuple(names) != SECTIONS_OF[version]:
        raise ImportRefused(
            f"line 1: the sections are not those of export format {version}: {', '.join(SECTIONS_OF[version])}"
        )
    checked = []
    for section in sections:
        rows, next_id = section.get("rows"), section.get("nextId")
        if type(rows) is not int or rows < 0:
            raise ImportRefused(f"line 1: section {section['name']}: rows {rows!r} is not a count")
        if next_id is not None and (type(next_id) is not int or next_id < 1):
            raise ImportRefused(f"line 1: section {section['name']}: nextId {next_id!r} is not an id")
        if next_id is not None and next_id > MAX_NEXT_ID:
            raise ImportRefused(
                f"line 1: section {section['name']}: nextId {next_id} is over {MAX_NEXT_ID:,} (2^62): the HAT's "
                f"ids would soon run out"
            )
        checked.append((section["name"], rows, next_id))
    return Header(schema_version=theirs, hat=hat, sections=checked, version=version)


async def target_schema_version(conn: asyncpg.Connection) -> int:
    """The migrations this database has, which must be all that this hatd knows."""
    try:
        version: int | None = await conn.fetchval(Q.schema_version)
    except asyncpg.UndefinedTableError:
        version = None
    latest = max(m.version for m in db.available_migrations())
    if version is None:
        raise ImportRefused("the database holds no HAT: run `hatd create-owner` first, then import")
    if version < latest:
        raise ImportRefused(f"the database is at schema version {version}, not {latest}: run `hatd migrate` first")
    if version > latest:
        raise ImportRefused(f"the database is at schema version {version}, newer than this hatd ({latest})")
    return version


@dataclass
class _Batch:
    section: str
    first_line: int = 0
    lines: list[str] | None = None
    size: int = 0


class Readable(Protocol):
    """A binary stream that reads a line of at most `limit` bytes (a file, standard input, BytesIO)."""

    def readline(self, limit: int = -1, /) -> bytes: ...


def numbered_lines(source: Readable, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
    """The stream's lines, numbered from 1, none longer than `limit` bytes (default MAX_LINE_BYTES,
    read when called, so a test can lower it): a longer one is refused without being read whole, so
    a file of one huge line cannot exhaust memory."""
    limit = MAX_LINE_BYTES if limit is None else limit
    number = 0
    while line := source.readline(limit + 1):
        number += 1
        if len(line) > limit:
            raise ImportRefused(f"line {number}: longer than {limit:,} bytes, more than any row of a hatd export holds")
        yield number, line


async def import_hat(conn: asyncpg.Connection, source: Readable, tracker: Tracker | None = None) -> Header:
    """Restores an export into this HAT, which must be empty (only the owner, the platform and the
    default vocabulary), ids and times as they were, in one transaction: all of it or, with
    ImportRefused naming the line, nothing. The file's accounts replace the HAT's; the owner and
    platform keep this HAT's passwords, other accounts come with none. The plain indexes of
    REBUILT_INDEX_TABLES are dropped at the start and made again once the rows are in (a refusal
    rolls that back with the rest). A version 2 file's digests are checked first, over the whole
    file (spooled to a temporary file if `source` cannot seek), before anything is written.
    Returns the file's header."""
    schema_version = await target_schema_version(conn)
    with tempfile.TemporaryFile() as spool:
        if not _seekable(source):
            _spool(source, spool)
            source = spool
        start = source.tell()  # type: ignore[attr-defined]
        check_file(source, schema_version)
        source.seek(start)  # type: ignore[attr-defined]
        return await _import_checked(conn, source, schema_version, tracker)


def _seekable(source: Readable) -> bool:
    try:
        return bool(source.seekable())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


def _spool(source: Readable, spool: Any) -> None:
    """A stream that cannot seek (standard input) goes to a temporary file first, a line at a time,
    so that a line over the limit is refused here as it would be on import."""
    for _, line in numbered_lines(source):
        spool.write(line)
    spool.seek(0)


def check_file(source: Readable, schema_version: int = 2**31) -> Header:
    """Reads a whole export once, changing nothing: its header, every section's line count and,
    for version 2, each section's digest and the whole file's against its last line. ImportRefused
    naming the section (and its lines) that differs: a damaged or edited file is never imported."""
    numbered = numbered_lines(source)
    first = next(numbered, (1, None))[1]
    header = read_header(first, schema_version)
    assert first is not None
    whole = hashlib.sha256(first)
    found: dict[str, str] = {}
    spans: dict[str, tuple[int, int]] = {}
    number = 1
    for section, rows, _ in header.sections:
        digest = hashlib.sha256()
        begin = number + 1
        for _ in range(rows):
            item = next(numbered, None)
            if item is None:
                raise ImportRefused(
                    f"line {number}: the file ends inside section {section}, which the header says has {rows} rows"
                )
            number, line = item
            digest.update(line)
            whole.update(line)
        found[section], spans[section] = digest.hexdigest(), (begin, number)
    if header.version == 1:
        for number, line in numbered:
            if line.strip():
                raise ImportRefused(f"line {number}: more rows than the header announces")
        return header
    last = next(numbered, None)
    if last is None:
        raise ImportRefused(f"line {number + 1}: the file ends before its digest line (it was cut short)")
    number, line = last
    if _SECTION_KEY.match(line):
        raise ImportRefused(f"line {number}: more rows than the header announces")
    try:
        stated = json.loads(line)
        listed = {item["name"]: item[DIGEST] for item in stated["sections"]}
        stated_whole = stated[DIGEST]
    except (ValueError, KeyError, TypeError):
        raise ImportRefused(
            f"line {number}: not the digest line that ends a version 2 export (damaged, or the file was cut short)"
        ) from None
    if stated.get("digests") != DIGEST or set(listed) != set(SECTIONS):
        raise ImportRefused(f"line {number}: the digest line does not list a {DIGEST} for each section")
    for section in SECTIONS:
        if listed[section] != found[section]:
            begin, end = spans[section]
            where = f"lines {begin}-{end}" if end >= begin else "no lines"
            raise ImportRefused(
                f"section {section} ({where}) does not match its digest: the file was changed or damaged "
                "after it was exported"
            )
    if stated_whole != whole.hexdigest():
        raise ImportRefused("line 1: the header does not match the file's digest: it was changed after the export")
    for number, line in numbered:
        if line.strip():
            raise ImportRefused(f"line {number}: more lines after the digest line")
    return header


async def _import_checked(
    conn: asyncpg.Connection, source: Readable, schema_version: int, tracker: Tracker | None
) -> Header:
    numbered = numbered_lines(source)
    header = read_header(next(numbered, (1, None))[1], schema_version)
    if tracker is not None:
        tracker.start(header.rows)
    async with conn.transaction():
        await conn.execute(Q.lock_hat)
        used = [row["name"] for row in await conn.fetch(Q.hat_contents)]
        if used:
            raise ImportRefused(f"this HAT is not empty (it has {', '.join(used)} rows): import only into a new HAT")
        hashes = {row["role"]: row["pass_hash"] for row in await conn.fetch(Q.special_password_hashes)}
        if set(hashes) != {"owner", "platform"}:
            raise ImportRefused("the database holds no HAT: run `hatd create-owner` first, then import")
        await conn.execute(Q.keep_target_vocabulary)
        await conn.execute(Q.clear_target)
        indexes = await conn.fetch(Q.rebuildable_indexes, list(REBUILT_INDEX_TABLES))
        foreign_keys = await conn.fetch(Q.checked_foreign_keys, list(CHECKED_FOREIGN_KEYS))
        if len(foreign_keys) != len(CHECKED_FOREIGN_KEYS):
            raise ExportError(f"this HAT's schema lacks some of the foreign keys {', '.join(CHECKED_FOREIGN_KEYS)}")
        for dropped in [*indexes, *foreign_keys]:
            await conn.execute(dropped["drop"])
        line_number = 1
        for section, rows, _ in header.sections:
            extra = (hashes["owner"], hashes["platform"]) if section == "accounts" else ()
            line_number = await _import_section(conn, numbered, section, rows, line_number, extra, tracker)
        if header.version > 1:
            next(numbered, None)  # the digest line, checked already
        for number, line in numbered:
            if line.strip():
                raise ImportRefused(f"line {number}: more rows than the header announces")
        await _restore(conn, indexes, foreign_keys)
        await _check_imported(conn)
        next_ids = {name: next_id for name, _, next_id in header.sections if next_id is not None}
        await _check_api_rules(conn, next_ids.get("data_tables"))
        await _advance_sequences(conn, next_ids)
    return header


async def _import_section(
    conn: asyncpg.Connection,
    numbered: Iterator[tuple[int, bytes]],
    section: str,
    rows: int,
    line_number: int,
    extra: tuple[str, ...],
    tracker: Tracker | None,
) -> int:
    """Inserts the section's `rows` lines in batches; returns the number of its last line."""
    batch = _Batch(section)
    for _ in range(rows):
        try:
            line_number, line = next(numbered)
        except StopIteration:
            raise ImportRefused(
                f"line {line_number}: the file ends inside section {section}, which the header says has {rows} rows"
            ) from None
        match = _SECTION_KEY.match(line)
        if match is None or match[1].decode() != section:
            found = f'a "{match[1].decode()}" row' if match else "not a row"
            raise ImportRefused(f"line {line_number}: expected a {section} row (the header says so), found {found}")
        try:
            text = line.rstrip(b"\n").decode()
        except UnicodeDecodeError as exc:
            raise ImportRefused(f"line {line_number}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
        if batch.lines is None:
            batch.first_line, batch.lines, batch.size = line_number, [], 0
        batch.lines.append(text)
        batch.size += len(line)
        if len(batch.lines) >= BATCH_ROWS or batch.size >= BATCH_BYTES:
            await _insert(conn, batch, extra, tracker)
    await _insert(conn, batch, extra, tracker)
    return line_number


async def _insert(conn: asyncpg.Connection, batch: _Batch, extra: tuple[str, ...], tracker: Tracker | None) -> None:
    """Inserts a batch in one statement. If PostgreSQL refuses it, finds the first line it refuses
    alone (each in its own savepoint) to name it: the slow path runs only on the way to failing."""
    if not batch.lines:
        return
    query = getattr(Q, f"import_{batch.section}")
    try:
        async with conn.transaction():
            broken = await conn.fetchrow(query, batch.lines, *extra)
    except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
        for offset, line in enumerate(batch.lines):
            try:
                async with conn.transaction():
                    broken = await conn.fetchrow(query, [line], *extra)
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as alone:
                number = batch.first_line + offset
                raise ImportRefused(f"line {number}: {batch.section} row refused: {_say(alone)}") from None
            _refuse_broken_key(batch, broken, offset)
        last = batch.first_line + len(batch.lines) - 1
        raise ImportRefused(f"lines {batch.first_line}-{last}: {batch.section} rows refused: {_say(exc)}") from None
    _refuse_broken_key(batch, broken, 0)
    if tracker is not None:
        tracker.advance(batch.section, len(batch.lines))
    batch.lines, batch.size = None, 0


def _refuse_broken_key(batch: _Batch, broken: asyncpg.Record | None, offset: int) -> None:
    """Refuses the line an import query found breaking one of CHECKED_FOREIGN_KEYS (its `n` counts
    from 1 in the lines it was given, the first of which is the batch's line `offset`), in the words
    PostgreSQL uses when the constraint itself refuses a row."""
    if broken is None:
        return
    number = batch.first_line + offset + broken["n"] - 1
    raise ImportRefused(
        f'line {number}: {batch.section} row refused: insert or update on table "{batch.section}" violates '
        f'foreign key constraint "{broken["constraint"]}" ({broken["detail"]})'
    )


async def _restore(conn: asyncpg.Connection, indexes: list[asyncpg.Record], foreign_keys: list[asyncpg.Record]) -> None:
    """Makes again the indexes and foreign keys the import dropped, as they were, once every row is
    in. Adding a foreign key checks every row again, so a bad reference the batches missed (none
    should) is still refused, if without its line."""
    await conn.execute(Q.index_build_memory, INDEX_BUILD_MEMORY)
    for index in indexes:
        await conn.execute(index["definition"])
    for foreign_key in foreign_keys:
        try:
            await conn.execute(foreign_key["definition"])
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise ImportRefused(f"the file's rows break a foreign key: {_say(exc)}") from None


async def _advance_sequences(conn: asyncpg.Connection, next_ids: dict[str, int]) -> None:
    """Sets each sequence to the file's next id, or past the highest id imported; last of all, as
    setval is never undone, not even by the transaction's rollback. Refuses ids so high that the
    sequences would soon run out (every insert after would fail)."""
    rows = await conn.fetch(Q.next_ids, list(next_ids), list(next_ids.values()))
    for row in rows:
        if row["next_id"] > MAX_NEXT_ID:
            raise ImportRefused(
                f"section {row['name']}: its ids reach {row['next_id'] - 1}; a HAT's ids stay below {MAX_NEXT_ID:,} "
                f"(2^62) so that its sequences never run out"
            )
    try:
        await conn.execute(Q.set_sequences, [row["name"] for row in rows], [int(row["next_id"]) for row in rows])
    except asyncpg.PostgresError as exc:
        raise ImportRefused(f"the id sequences cannot be set: {_say(exc)}") from None


async def _check_api_rules(conn: asyncpg.Connection, next_table_id: int | None) -> None:
    """Refuses rows the API could never have made: the rules its code enforces where the tables'
    constraints do not (import_violations in sql/queries/exports.sql; docs/export.md lists them).
    Set-based, once every row is in."""
    kinds = [kind for kind, allowed in MAY_LINK_TO.items() for _ in allowed]
    linked = [other for allowed in MAY_LINK_TO.values() for other in allowed]
    found = [row["problem"] for row in await conn.fetch(Q.import_violations, kinds, linked, next_table_id or 1)]
    if found:
        raise ImportRefused(f"the file holds rows the API would never make: {'; '.join(found)}")


def _say(exc: asyncpg.PostgresError) -> str:
    detail = getattr(exc, "detail", None)
    return f"{exc} ({detail})" if detail else str(exc)


async def _check_imported(conn: asyncpg.Connection) -> None:
    """What the file must make true beyond the tables' own constraints."""
    left_out = await conn.fetch(Q.vocabulary_left_out)
    if left_out:
        named = ", ".join(f"{row['section']} {row['id']} ({row['label']})" for row in left_out)
        raise ImportRefused(f"this HAT is not empty: it has vocabulary the file lacks: {named}")
    special = await conn.fetchrow(Q.special_roles)
    if (special["owners"], special["platforms"]) != (1, 1):
        raise ImportRefused("the file's accounts must include the owner and the platform account")
    cycle = await conn.fetchval(Q.table_link_cycle)
    if cycle is not None:
        raise ImportRefused(f"the file's subtable links form a cycle through table {cycle}")
