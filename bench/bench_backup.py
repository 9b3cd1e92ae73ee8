"""Backup benchmark: a HAT of 1,000,000 raw values on the embedded PostgreSQL, served by `hatd serve`.

Prints, each beside plain `pg_basebackup` of the same cluster (unencrypted, uncompressed, in the
same run): the time and size of a full backup and of an incremental one (after 100,000 more
values); the time of a restore to the latest moment and to a point in time (beside
pg_combinebackup of the plain backups, the plain restore's own step); and the p99 latency of 8
writers while a full backup runs, beside the same writers with none running (ceiling: 2x).
`hatd backup run` times the whole job: pg_basebackup, tar, zstd, age, then opening it again and
pg_verifybackup. Asserts nothing; the figures are for reading."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg
from bench_export import fill, new_table, run_child
from common import OWNER, ROOT, free_port, percentile

from hatd.backup import keys
from hatd.backup.service import server_options
from hatd.backup.store import WAL_LOCK, Store
from hatd.backup.take import pg_program
from hatd.embedded import SUPERUSER, EmbeddedPostgres
from hatd.settings import load

VALUES = 1_000_000
MORE = 100_000
WRITERS = 8
LATENCY_CEILING = 2.0


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def newest(backups: Path, kind: str) -> Path:
    return sorted(backups.glob(f"base/*-{kind}"))[-1]


def plain(socket_dir: Path, target: Path, *extra: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [pg_program("pg_basebackup"), "-h", str(socket_dir), "-U", SUPERUSER, "-D", str(target), "-Fp", "-X",
         "stream", "-c", "fast", *extra],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started


async def writers(base: str, field: int, seconds: float) -> list[float]:
    """WRITERS clients each posting one record of one value at a time for `seconds`; their latencies."""
    latencies: list[float] = []
    async with aiohttp.ClientSession(base) as http:
        login = {"username": OWNER[0], "password": OWNER[1]}
        async with http.get("/users/access_token", headers=login) as response:
            token = (await response.json())["accessToken"]
        deadline = time.perf_counter() + seconds

        async def one(w: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                body = [{"record": {"name": f"w{w}.{n}"}, "values": [{"value": f"w{w}.{n}", "field": {"id": field}}]}]
                started = time.perf_counter()
                async with http.post("/data/record/values", json=body, headers={"X-Auth-Token": token}) as response:
                    await response.read()
                    if response.status != 201:
                        raise SystemExit(f"a write answered {response.status}")
                latencies.append(time.perf_counter() - started)
                n += 1

        await asyncio.gather(*(one(w) for w in range(WRITERS)))
    return latencies


async def count_values(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM data_values"))
    finally:
        await conn.close()


async def close_wal(dsn: str) -> None:
    """Closes the current WAL file and waits for PostgreSQL to archive it (to the staging folder)."""
    conn = await asyncpg.connect(dsn)
    try:
        name = await conn.fetchval("SELECT pg_walfile_name(pg_switch_wal())")
        while (await conn.fetchval("SELECT last_archived_wal FROM pg_stat_archiver") or "")[8:24] < name[8:24]:  # noqa: ASYNC110 (polling the server)
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


def restored_values(folder: Path) -> int:
    server = EmbeddedPostgres(folder)
    server.start()
    try:
        return asyncio.run(count_values(server.dsn("hatd")))
    finally:
        server.stop()


def main() -> None:
    print(f"hatd backup benchmark: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"a HAT of {VALUES:,} values, hatd serve on the embedded PostgreSQL")  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="hatd-bench-backup-"))
    folder.chmod(0o755)
    data_dir, backups = folder / "hat", folder / "backups"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATD_")}
    env.update(
        HATD_DATA_DIR=str(data_dir), HATD_BACKUP_DIR=str(backups), HATD_PORT=str(port), HATD_OWNER_EMAIL=OWNER[0],
        HATD_OWNER_PASSWORD=OWNER[1], HATD_LOG_LEVEL="warning", HATD_BACKUP_INTERVAL="100000000",
        HATD_BACKUP_FULL_INTERVAL="100000000",
    )  # fmt: skip
    settings = load(environ=env)
    started = time.perf_counter()
    serve = subprocess.Popen([sys.executable, "-m", "hatd", "serve"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    server = EmbeddedPostgres(data_dir, options=server_options(settings))
    try:
        deadline = time.time() + 120
        while not (data_dir / "backup-state.json").exists() or not json.loads(
            (data_dir / "backup-state.json").read_text()
        ).get("last_good"):
            if time.time() > deadline or serve.poll() is not None:
                raise SystemExit("hatd serve did not start and take its first backup")
            time.sleep(0.2)
        server.start()
        assert server.socket_dir is not None
        dsn = server.dsn("hatd")
        table_id, field_ids = asyncio.run(new_table(dsn))
        asyncio.run(fill(dsn, table_id, field_ids, VALUES, 0))
        database_mb = du(server.pgdata) / 1e6

        full_s = run_child(["backup", "run", "--full"], env)[0]
        full_size = du(newest(backups, "full"))
        plain_full_s = plain(server.socket_dir, folder / "plain-full")
        plain_full_size = du(folder / "plain-full")

        asyncio.run(fill(dsn, table_id, field_ids, MORE, VALUES))
        incr_s = run_child(["backup", "run"], env)[0]
        incr_size = du(newest(backups, "incr"))
        manifest = folder / "plain-full" / "backup_manifest"
        plain_incr_s = plain(server.socket_dir, folder / "plain-incr", f"--incremental={manifest}")
        plain_incr_size = du(folder / "plain-incr")

        base = f"http://127.0.0.1:{port}"
        quiet = asyncio.run(writers(base, field_ids[0], 10))

        async def busy() -> tuple[list[float], float]:
            job = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hatd", "backup", "run", "--full", cwd=ROOT, env=env,
                stdout=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            job_started = time.perf_counter()
            latencies = await writers(base, field_ids[0], 10)
            await job.wait()
            return latencies, time.perf_counter() - job_started

        during, busy_job_s = asyncio.run(busy())
        written_by_writers = len(quiet) + len(during)

        moment = dt.datetime.now(dt.UTC)
        time.sleep(0.05)
        asyncio.run(fill(dsn, table_id, field_ids, 10_000, VALUES + MORE))
        asyncio.run(close_wal(server.dsn()))
        store = Store(data_dir, backups)
        identity = keys.load_identity(keys.key_path(data_dir))
        with store.locked(name=WAL_LOCK):
            store.ship_wal(identity)
        expected_at_t = VALUES + MORE + written_by_writers
        key = folder / "key-copy"
        shutil.copyfile(keys.key_path(data_dir), key)

        latest_s = run_child(
            ["restore", str(backups), "--key", str(key)], {**env, "HATD_DATA_DIR": str(folder / "latest")}
        )[0]
        to_t_s = run_child(
            ["restore", str(backups), "--key", str(key), "--to", moment.isoformat()],
            {**env, "HATD_DATA_DIR": str(folder / "to-t")},
        )[0]
        combine_started = time.perf_counter()
        subprocess.run(
            [pg_program("pg_combinebackup"), str(folder / "plain-full"), str(folder / "plain-incr"), "-o",
             str(folder / "plain-restore")],
            check=True,
        )  # fmt: skip
        combine_s = time.perf_counter() - combine_started
        latest_values = restored_values(folder / "latest")
        to_t_values = restored_values(folder / "to-t")

        p99_quiet, p99_busy = percentile(quiet, 0.99), percentile(during, 0.99)
        ratio = p99_busy / p99_quiet
        print(f"\n  database {database_mb:,.0f} MB on disk; backup folder {du(backups) / 1e6:,.0f} MB at the end\n")
        rows = [
            ("full backup", full_s, full_size, plain_full_s, plain_full_size),
            (f"incremental (+{MORE:,})", incr_s, incr_size, plain_incr_s, plain_incr_size),
            ("restore to the latest", latest_s, None, combine_s, None),
            ("restore to a time T", to_t_s, None, combine_s, None),
        ]
        print("                          |   hatd s  hatd MB | plain s  plain MB | hatd/plain time")
        for name, ours, our_size, theirs, their_size in rows:
            sizes = [f"{size / 1e6:8.1f}" if size else " " * 8 for size in (our_size, their_size)]
            print(f"  {name:<23} | {ours:8.1f} {sizes[0]} | {theirs:7.1f} {sizes[1]}  | {ours / theirs:6.1f}x")
        print("  (plain: pg_basebackup, unencrypted and uncompressed; for a restore, pg_combinebackup of those)")
        print(f"\n  restored values: latest {latest_values:,} (expected {expected_at_t + 10_000:,}), "
              f"at T {to_t_values:,} (expected {expected_at_t:,})")  # fmt: skip
        verdict = "within" if ratio <= LATENCY_CEILING else "OVER"
        print(
            f"\n  {WRITERS} writers, p99 latency: {p99_quiet * 1000:.1f} ms alone, {p99_busy * 1000:.1f} ms while a "
            f"full backup ran ({busy_job_s:.1f} s): {ratio:.2f}x (ceiling {LATENCY_CEILING:.0f}x: {verdict}); "
            f"{len(quiet):,} and {len(during):,} writes"
        )
        print("\n  hatd s: the whole `hatd backup run` / `hatd restore` process: pg_basebackup, tar, zstd, age,")
        print("  then opening it again and pg_verifybackup (a restore: opening, pg_verifybackup, pg_combinebackup,")
        print("  WAL replay).")
        if latest_values != expected_at_t + 10_000 or to_t_values != expected_at_t:
            raise SystemExit("a restore did not give back exactly the values written")
    finally:
        server.stop()
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=120)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
