"""Export and import benchmark: `hatd export` and `hatd import` as real processes on the embedded
PostgreSQL, for a HAT of 100,000 and then 1,000,000 raw values (filled with COPY, not HTTP).

Prints, for each size: the export's values/s and its peak memory (the child's ru_maxrss), beside
the ceiling, PostgreSQL's own COPY (SELECT ...) TO STDOUT of the same values read by asyncpg (as
plain rows, and as the JSON lines the export writes); then the import's values/s and peak memory
into a new HAT, and whether exporting that HAT again gives the same bytes. Flat memory shows as the
same peak at both sizes. Asserts nothing about time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
from common import ROOT

from hatd.db import queries
from hatd.embedded import EmbeddedPostgres

EXPORTS = queries("exports")
SIZES = (100_000, 1_000_000)
FIELDS = 10
CHUNK = 100_000  # values per COPY while filling
ROWS_COPY = "SELECT id, value, field_id, record_id, date_created, last_updated FROM data_values ORDER BY id"
NEXT_RECORD_IDS = "SELECT nextval(pg_get_serial_sequence('data_records', 'id')) FROM generate_series(1, $1)"
NEW_FIELD = "INSERT INTO data_fields (table_id, name) VALUES ($1, $2) RETURNING id"
JSON_COPY = EXPORTS.export_data_values.rstrip(";")
# The export's own COPY options: CSV with control-byte quote and delimiter passes the JSON through.
JSON_OPTIONS = {"format": "csv", "delimiter": "\x02", "quote": "\x01"}


def run_child(args: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Runs `hatd ARGS` to its end; returns (seconds, peak resident memory in MiB of the process
    itself, from /proc's VmHWM sampled as it runs, and its ru_maxrss). wait4 gives the rusage of
    this one child (RUSAGE_CHILDREN would be the largest of all children so far); ru_maxrss also
    counts the child's own children, such as the pg_ctl it may run, which VmHWM does not."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "hatd", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    high_water = 0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        with contextlib.suppress(OSError, IndexError, ValueError):
            status_lines = Path(f"/proc/{child.pid}/status").read_text().splitlines()
            # An exited child not yet reaped (a zombie) has no VmHWM line any more.
            peaks = [int(x.split()[1]) for x in status_lines if x.startswith("VmHWM")]
            high_water = max([high_water, *peaks])
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"hatd {' '.join(args)} exited with {child.returncode}")
    return seconds, high_water // 1024, usage.ru_maxrss // 1024


async def fill(dsn: str, table_id: int, field_ids: list[int], values: int, start: int) -> None:
    """Adds `values` values (FIELDS per record) with COPY, records first."""
    conn = await asyncpg.connect(dsn)
    try:
        for offset in range(0, values, CHUNK):
            count = min(CHUNK, values - offset)
            records = count // FIELDS
            async with conn.transaction():
                ids = [r[0] for r in await conn.fetch(NEXT_RECORD_IDS, records)]
                await conn.copy_records_to_table(
                    "data_records", records=[(i, f"record {i}") for i in ids], columns=["id", "name"]
                )
                await conn.copy_records_to_table(
                    "data_values",
                    records=[
                        (f"value {start + offset + n}", field_ids[n % FIELDS], ids[n // FIELDS]) for n in range(count)
                    ],
                    columns=["value", "field_id", "record_id"],
                )
        await conn.execute("VACUUM ANALYZE data_values")
        await conn.execute("VACUUM ANALYZE data_records")
    finally:
        await conn.close()


async def new_table(dsn: str) -> tuple[int, list[int]]:
    conn = await asyncpg.connect(dsn)
    try:
        table_id = await conn.fetchval("INSERT INTO data_tables (name, source) VALUES ('bench', 'bench') RETURNING id")
        field_ids = [await conn.fetchval(NEW_FIELD, table_id, f"f{i}") for i in range(FIELDS)]
        return table_id, field_ids
    finally:
        await conn.close()


async def copy_ceiling(dsn: str, query: str, **options: str) -> tuple[float, int]:
    """(seconds, bytes) of PostgreSQL's COPY (query) TO STDOUT, read by asyncpg and thrown away."""
    conn = await asyncpg.connect(dsn)
    size = 0

    async def sink(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)

    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(EXPORTS.export_session)
            started = time.perf_counter()
            await conn.copy_from_query(query, output=sink, **options)
            return time.perf_counter() - started, size
    finally:
        await conn.close()


async def create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}" OWNER hatd')
    finally:
        await conn.close()


def main() -> None:
    print(f"hatd export/import benchmark: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"hatd export and import as child processes, embedded PostgreSQL")  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="hatd-bench-export-"))
    folder.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATD_")}
    env.update(HATD_DATA_DIR=str(folder), HATD_OWNER_PASSWORD="bench", HATD_LOG_LEVEL="warning", HATD_BACKUP_DIR="off")
    server = EmbeddedPostgres(folder)
    started = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-m", "hatd", "create-owner"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        server.start()
        dsn = server.dsn("hatd")
        table_id, field_ids = asyncio.run(new_table(dsn))
        print()
        print("     values |  export s  values/s  MiB peak  maxrss  file MB | COPY rows values/s | COPY JSON values/s "
              "| import s  values/s  MiB peak  maxrss | same bytes")  # fmt: skip
        filled = 0
        for size in SIZES:
            asyncio.run(fill(dsn, table_id, field_ids, size - filled, filled))
            filled = size
            file = folder / f"export-{size}.jsonl"
            export_s, export_mib, export_rss = run_child(["export", str(file)], env)
            rows_s, _ = asyncio.run(copy_ceiling(dsn, ROWS_COPY))
            json_s, _ = asyncio.run(copy_ceiling(dsn, JSON_COPY, **JSON_OPTIONS))

            target = f"hatd_import_{size}"
            asyncio.run(create_database(server.dsn(), target))
            target_env = {**env, "HATD_DATABASE_URL": server.dsn(target, user="hatd")}
            subprocess.run([sys.executable, "-m", "hatd", "create-owner"], cwd=ROOT, env=target_env, check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            import_s, import_mib, import_rss = run_child(["import", str(file)], target_env)
            again = folder / f"again-{size}.jsonl"
            run_child(["export", str(again)], target_env)
            same = again.read_bytes() == file.read_bytes()
            megabytes = file.stat().st_size / 1e6
            print(
                f"  {size:>9,} | {export_s:8.2f} {size / export_s:9,.0f} {export_mib:9d} {export_rss:7d} "
                f"{megabytes:8.0f} "
                f"| {size / rows_s:18,.0f} | {size / json_s:18,.0f} | {import_s:8.2f} {size / import_s:9,.0f} "
                f"{import_mib:9d} {import_rss:7d} | {'yes' if same else 'NO'}",
                flush=True,
            )
            again.unlink()
            if not same:
                raise SystemExit("exporting the imported HAT gave other bytes")
        print()
        print("  export s and import s: the whole child process (Python start, embedded server check, the work);")
        print("  MiB peak: the hatd process's own VmHWM; maxrss: its ru_maxrss (wait4), which counts its children too;")
        print("  the COPY ceilings: the data_values COPY alone, inside a snapshot, through asyncpg to a null sink.")
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
