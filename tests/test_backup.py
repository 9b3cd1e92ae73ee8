"""Backups as the owner meets them, with real processes on a real embedded PostgreSQL: `hatd serve`
takes a full backup on its first start and archives WAL; `hatd backup run` takes an incremental one
while 8 writers ingest; the data folder is destroyed; `hatd restore` brings back exactly what was
acknowledged up to a time T, and up to the latest, checked through the API. Nothing written is
readable in the backup folder, a flipped byte is caught by `hatd backup verify` and by restore, and
restore never writes over a HAT."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pyrage
import pytest

from hatd.app import create_app
from hatd.backup import keys
from hatd.backup import restore as restoring
from hatd.backup import service as backups
from hatd.backup.keys import BackupError
from hatd.backup.store import WAL_LOCK, Backup, Store, chain_of, first_missing_wal, iso, lsn_position
from hatd.backup.take import record_failure
from hatd.embedded import EmbeddedPostgres
from hatd.settings import Settings
from tests import pg
from tests.conftest import OWNER
from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS, OUTPUT, SKIP_REASON
from tests.test_cli import OWNER_EMAIL, REPO, Server, StartServer, free_port, hatd, hatd_env
from tests.web_helpers import logged_in

PASSWORD = "backup-owner"
AGE = b"age-encryption.org/v1\n"


@pytest.fixture
def serve() -> Iterator[StartServer]:
    """serve(env, folder): a running `hatd serve`; killed after the test if still running."""
    started: list[Server] = []

    def start(env: dict[str, str], folder: Path) -> Server:
        server = Server(env, folder)
        started.append(server)
        server.wait_until_serving()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.kill()


class Hat:
    """A HAT's API over HTTP: one table with one field, records of one value each."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> Hat:
        self.session = aiohttp.ClientSession(self.base)
        async with self.session.get(
            "/users/access_token", headers={"username": OWNER_EMAIL, "password": PASSWORD}
        ) as response:
            assert response.status == 200, await response.text()
            self.headers = {"X-Auth-Token": (await response.json())["accessToken"]}
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def make_table(self) -> int:
        table = {"name": "notes", "source": "backuptest", "fields": [{"name": "text"}]}
        async with self.session.post("/data/table", json=table, headers=self.headers) as response:
            assert response.status == 201, await response.text()
            field_id: int = (await response.json())["fields"][0]["id"]
            return field_id

    async def field_id(self) -> int:
        async with self.session.get("/data/table?name=notes&source=backuptest", headers=self.headers) as response:
            assert response.status == 200, await response.text()
            found: int = (await response.json())["fields"][0]["id"]
            return found

    async def write(self, field_id: int, value: str) -> None:
        body = [{"record": {"name": value}, "values": [{"field": {"id": field_id, "name": "text"}, "value": value}]}]
        async with self.session.post("/data/record/values", json=body, headers=self.headers) as response:
            assert response.status == 201, await response.text()

    async def values(self, field_id: int) -> set[str]:
        async with self.session.get(f"/data/field/{field_id}/values?limit=10000", headers=self.headers) as response:
            assert response.status == 200, await response.text()
            return {value["value"] for value in (await response.json())["values"]}


def written(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i}-{uuid.uuid4().hex}" for i in range(count)]


def wait_for_first_backup(data_dir: Path, server: Server, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = json.loads((data_dir / "backup-state.json").read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("last_good"):
            return state
        assert state.get("failure") is None, state
        time.sleep(0.2)
    pytest.fail(f"no backup within {timeout} s\n{server.output()}")


def get_metrics(port: int) -> str:
    async def fetch() -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer scrape"}) as response,
        ):
            assert response.status == 200
            return await response.text()

    return asyncio.run(fetch())


@pytest.mark.slow
def test_restore_to_a_time_and_to_the_latest_gives_back_exactly_what_was_acknowledged(
    tmp_path: Path, serve: StartServer
) -> None:
    scratch = pg.scratch_dir("hatd-backup-test-")
    scratch.chmod(0o755)
    data_dir, backup_dir = scratch / "hat", scratch / "second-disk"
    port = free_port()
    env = hatd_env(
        tmp_path, data_dir=str(data_dir), backup_dir=str(backup_dir), port=str(port), owner_password=PASSWORD,
        metrics_token="scrape",
    )  # fmt: skip
    restored: list[Path] = []
    try:
        server = serve(env, tmp_path)
        assert f"encrypted to the key in:\n\n      {data_dir / 'backup.key'}" in server.stdout_path.read_text()
        assert "Keep a copy of that file somewhere else" in server.stdout_path.read_text()
        assert wait_for_first_backup(data_dir, server)["last_good"].endswith("-full")

        async def write_phases() -> tuple[list[str], list[str], list[str], dt.datetime]:
            async with Hat(port) as hat:
                field = await hat.make_table()
                # A: 8 writers ingest while an incremental backup runs in its own process.
                batches = [written(f"a{w}", 15) for w in range(8)]
                job = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "hatd", "backup", "run", cwd=REPO, env=env,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                )  # fmt: skip

                async def writer(values: list[str]) -> None:
                    for value in values:
                        await hat.write(field, value)

                await asyncio.gather(*(writer(batch) for batch in batches))
                output, _ = await job.communicate()
                assert job.returncode == 0, output.decode()
                assert b"-incr taken and verified" in output, output.decode()
                phase_a = [value for batch in batches for value in batch]
                phase_b = written("b", 10)
                await writer(phase_b)
                await asyncio.sleep(0.05)
                moment = dt.datetime.now(dt.UTC)
                await asyncio.sleep(0.05)
                phase_c = written("c", 10)
                await writer(phase_c)
                assert await hat.values(field) == {*phase_a, *phase_b, *phase_c}
                return phase_a, phase_b, phase_c, moment

        phase_a, phase_b, phase_c, moment = asyncio.run(write_phases())

        metrics = get_metrics(port)
        assert "hatd_backup_last_success_timestamp_seconds " in metrics
        assert "hatd_backup_failing 0" in metrics
        status = hatd("backup", "status", env=env)
        assert status.returncode == 0, status.stderr
        assert "-incr (" in status.stdout and "last failure:        none" in status.stdout

        # A clean stop archives the last WAL.
        assert server.terminate() == 0, server.output()

        # Nothing written is readable in the folder: every file but the public key is an age file.
        files = [p for p in backup_dir.rglob("*") if p.is_file()]
        # (recipient: the key's public half; writer: the id of the data folder that writes into it)
        assert {p.name for p in files if not p.read_bytes().startswith(AGE)} == {"recipient", "writer"}
        everything = b"".join(p.read_bytes() for p in files)
        for value in [*phase_a, *phase_b, *phase_c]:
            assert value.encode() not in everything

        # The disk dies; the owner kept a copy of the key.
        key = scratch / "key-copy"
        shutil.copyfile(data_dir / "backup.key", key)
        shutil.rmtree(data_dir)

        def restore_and_read(name: str, to: str) -> set[str]:
            target = scratch / name
            restored.append(target)
            back = hatd("restore", str(backup_dir), "--to", to, "--key", str(key), env={**env, "HATD_DATA_DIR": str(target)}, timeout=120)  # fmt: skip
            assert back.returncode == 0, back.stdout + back.stderr
            assert f"Restored {target}" in back.stdout
            assert ": the last transaction replayed committed at 20" in back.stdout, back.stdout
            again = free_port()
            # Served with backups off: two copies of one HAT must not both write into the folder.
            copy = serve(
                {**env, "HATD_DATA_DIR": str(target), "HATD_PORT": str(again), "HATD_BACKUP_DIR": "off"}, target
            )

            async def read() -> set[str]:
                async with Hat(again) as hat:
                    return await hat.values(await hat.field_id())

            try:
                return asyncio.run(read())
            finally:
                assert copy.terminate() == 0, copy.output()

        assert restore_and_read("to-t", moment.isoformat()) == {*phase_a, *phase_b}
        assert restore_and_read("latest", "latest") == {*phase_a, *phase_b, *phase_c}

        # A moment the backups do not hold yet, or no longer: refused, saying so, leaving no HAT behind.
        for to, said in [
            ((moment + dt.timedelta(days=1)).isoformat(), "hatd: the backups end before"),
            ("2000-01-01T00:00:00Z", "hatd: no backup finished by 2000-01-01T00:00:00+00:00: the oldest moment"),
        ]:
            target = scratch / "not-held"
            restored.append(target)
            out_of_range = hatd("restore", str(backup_dir), "--to", to, "--key", str(key), env={**env, "HATD_DATA_DIR": str(target)}, timeout=120)  # fmt: skip
            assert out_of_range.returncode == 1 and said in out_of_range.stderr, out_of_range.stderr
            assert not (target / "postgres").exists()

        refused = hatd("restore", str(backup_dir), "--key", str(key), env={**env, "HATD_DATA_DIR": str(restored[1])})
        assert refused.returncode == 1
        assert f"{restored[1]} already holds a HAT" in refused.stderr
        assert "never writes over one" in refused.stderr
    finally:
        for folder in [data_dir, *restored]:
            if (folder / "postgres" / "postmaster.pid").exists():
                subprocess.run([sys.executable, "-c", f"from hatd.embedded import EmbeddedPostgres as E; from pathlib import Path; e=E(Path({str(folder)!r})); e.start(); e.stop()"], cwd=REPO, check=False)  # fmt: skip
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.slow
def test_a_flipped_byte_is_caught_by_verify_and_by_restore(tmp_path: Path, data_dir: Path) -> None:
    backup_dir = data_dir / "backups"
    env = hatd_env(tmp_path, data_dir=str(data_dir / "hat"), backup_dir=str(backup_dir))
    taken = hatd("backup", "run", env=env, timeout=120)
    assert taken.returncode == 0, taken.stderr
    assert hatd("backup", "verify", env=env).returncode == 0
    (sealed,) = backup_dir.glob("base/*-full/data.tar.zst.age")
    damaged = bytearray(sealed.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    sealed.write_bytes(bytes(damaged))

    verify = hatd("backup", "verify", env=env)
    assert verify.returncode == 1
    assert f"BROKEN  {sealed.parent.name}: {sealed} is damaged" in verify.stdout
    assert "hatd: 1 broken" in verify.stderr

    target = data_dir / "restored"
    key = data_dir / "hat" / "backup.key"
    back = hatd("restore", str(backup_dir), "--key", str(key), env={**env, "HATD_DATA_DIR": str(target)})
    assert back.returncode == 1
    assert f"{sealed} is damaged or not sealed with this key: decryption failed" in back.stderr
    assert not (target / "postgres").exists()
    assert os.listdir(backup_dir / "base") == [sealed.parent.name]


async def test_the_pages_and_metrics_show_the_backups_and_a_failure_loudly(
    database: str, admin_dsn: str, settings: Any, aiohttp_client: Any, tmp_path: Path
) -> None:
    hat_settings = settings.replace(database_url=database, data_dir=tmp_path / "hat", backup_dir=str(tmp_path / "b"))
    service = backups.BackupService(hat_settings, admin_dsn)
    app = create_app(hat_settings)
    app[backups.SERVICE] = service
    client = await aiohttp_client(app)
    await logged_in(client)
    store = service.store
    state = store.read_state()
    state.last_good, state.last_good_at = "20261201T100000Z-incr", "2026-12-01T10:00:00.000000Z"
    state.oldest_restorable, state.size, state.count = "2026-11-20T09:00:00.000000Z", 123456, 3
    store.write_state(state)

    page = await (await client.get("/owner")).text()
    assert '<time datetime="2026-12-01T10:00:00.000000Z">01 Dec 2026, 10:00 UTC</time>' in page
    assert "123,456 bytes, 3 backups" in page
    assert "Backups are failing" not in page
    metrics = await (await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})).text()
    assert "hatd_backup_last_success_timestamp_seconds 1796119200" in metrics
    assert "hatd_backup_failing 0" in metrics

    record_failure(store, "backup failed: pg_basebackup failed (1): could not connect")

    page = await (await client.get("/owner/debits")).text()
    assert (
        '<div class="alert" role="alert" id="backup-failing"><strong>Backups are failing.</strong> backup failed: pg_basebackup failed (1): could not connect'
        in page
    )
    metrics = await (await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})).text()
    assert "hatd_backup_failing 1" in metrics
    # The log says it once, however many times the service looks.
    with_logs = []
    handler = logging.Handler()
    handler.emit = with_logs.append  # type: ignore[method-assign]
    logging.getLogger("hatd.backup").addHandler(handler)
    try:
        service._announce()
        service._announce()
    finally:
        logging.getLogger("hatd.backup").removeHandler(handler)
    assert [r.getMessage() for r in with_logs] == [
        f"BACKUP FAILED ({store.read_state().failed_at}): backup failed: pg_basebackup failed (1): could not connect"
    ]


@pytest.mark.slow
def test_a_hat_on_another_postgresql_gets_encrypted_exports_that_import(tmp_path: Path, admin_dsn: str) -> None:
    source, target = (asyncio.run(pg.empty_database(admin_dsn)) for _ in range(2))
    try:
        backup_dir = tmp_path / "exports-folder"
        env = hatd_env(tmp_path, database_url=pg.with_database(admin_dsn, source), owner_password=PASSWORD)
        assert hatd("create-owner", env=env).returncode == 0
        assert "backups: off" in hatd("backup", "status", env=env).stdout  # not without a folder given
        env["HATD_BACKUP_DIR"] = str(backup_dir)

        taken = hatd("backup", "run", env=env)

        assert taken.returncode == 0, taken.stderr
        assert "-export taken and verified" in taken.stdout
        (sealed,) = backup_dir.glob("exports/*-export/data.jsonl.zst.age")
        assert sealed.read_bytes().startswith(AGE) and OWNER_EMAIL.encode() not in sealed.read_bytes()
        assert hatd("backup", "verify", env=env).returncode == 0
        opened = tmp_path / "hat.jsonl"
        assert hatd("backup", "open", str(sealed), str(opened), env=env).returncode == 0
        assert json.loads(opened.read_text().splitlines()[-1])["digests"] == "sha256"
        other = {**env, "HATD_DATABASE_URL": pg.with_database(admin_dsn, target), "HATD_BACKUP_DIR": "off"}
        assert hatd("create-owner", env=other).returncode == 0
        imported = hatd("import", str(opened), env=other)
        assert imported.returncode == 0, imported.stderr
    finally:
        for name in (source, target):
            asyncio.run(pg.drop(admin_dsn, name))


def test_retention_keeps_each_day_of_two_weeks_each_week_of_three_months_and_what_they_need(tmp_path: Path) -> None:
    store = Store(tmp_path / "hat", tmp_path / "folder")
    (store.backup_dir / "base").mkdir(parents=True)
    (store.backup_dir / "wal").mkdir()
    today = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
    made = []
    for days_ago in range(126, -1, -1):  # one backup a day at 03:00, a full one every 7th day
        moment = (today - dt.timedelta(days=days_ago)).replace(hour=3)
        kind = "full" if days_ago % 7 == 0 else "incr"
        label = f"{moment:%Y%m%dT%H%M%SZ}-{kind}"
        position = 1000 - days_ago  # a WAL file per day, and each backup starts in its day's
        made.append(
            Backup(
                label=label, kind=kind, parent=None if kind == "full" else made[-1].label, started=iso(moment),
                finished=iso(moment), timeline=1, start_lsn=f"{position >> 8:X}/{(position & 0xFF) << 24:X}",
                end_lsn="0/0", system_identifier="1", size=1,
            )
        )  # fmt: skip
        store.backup_folder(label).mkdir()
        (store.backup_dir / "wal" / f"00000001{position >> 8:08X}{position & 0xFF:08X}.zst.age").touch()

    kept = store.retain(made, 14, 13, today)

    labels = {b.label for b in kept}
    assert {b.label for b in made[-14:]} <= labels  # every day of the last 14
    older = [b for b in kept if b.finished_at.date() < made[-14].finished_at.date()]
    # Before that, one full backup a week (an incremental one would keep its whole chain), 13 weeks back.
    assert all(b.kind == "full" for b in older)
    assert len(older) == len({b.finished_at.isocalendar()[:2] for b in older})
    assert len(older) >= 11 and all((today - b.finished_at).days <= 13 * 7 for b in older)
    for backup in kept:  # every kept incremental backup still has the chain it was taken on
        assert backup.parent is None or backup.parent in labels
    assert sorted(p.name for p in (store.backup_dir / "base").iterdir()) == sorted(labels)
    first_daily = made[-14]
    wal = sorted(p.name for p in (store.backup_dir / "wal").iterdir())
    assert wal[0][8:24] == lsn_position(first_daily.start_lsn) and len(wal) == 14


async def test_a_server_that_does_not_archive_is_said_once_and_shown_as_failing(
    admin_dsn: str, settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The suite's own PostgreSQL archives nothing: as a server adopted from an older hatd would be.
    service = backups.BackupService(
        settings.replace(data_dir=tmp_path / "hat", backup_dir=str(tmp_path / "b")), admin_dsn
    )
    with caplog.at_level(logging.ERROR, logger="hatd.backup"):
        await service._watch_archiver()
        await service._watch_archiver()

    said = [r.getMessage() for r in caplog.records if r.name == "hatd.backup"]
    assert len(said) == 1 and said[0].startswith("BACKUP: WAL archiving is not on in the running PostgreSQL")
    status = service.status()
    assert status.failure is not None and "start `hatd serve` again" in status.failure
    assert backups.gauges(status)["hatd_backup_failing"][1] == {"": 1.0}


@pytest.mark.slow
async def test_the_owner_sees_the_backups_and_their_failure_in_a_browser(
    database: str, admin_dsn: str, settings: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    if CHROMIUM is None:
        pytest.skip(SKIP_REASON)
    from playwright.async_api import async_playwright

    port = free_port()
    hat_settings = settings.replace(
        database_url=database, hat_address=f"http://127.0.0.1:{port}", data_dir=tmp_path / "hat",
        backup_dir=str(tmp_path / "b"),
    )  # fmt: skip
    service = backups.BackupService(hat_settings, admin_dsn)
    state = service.store.read_state()
    state.last_good, state.last_good_at = "20261201T100000Z-full", "2026-12-01T10:00:00.000000Z"
    state.oldest_restorable, state.size, state.count = "2026-11-20T09:00:00.000000Z", 2_500_000, 4
    service.store.write_state(state)
    record_failure(service.store, "backup failed: the backup folder is not mounted")
    app = create_app(hat_settings)
    app[backups.SERVICE] = service
    await aiohttp_server(app, host="127.0.0.1", port=port)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, chromium_sandbox=False, args=CHROMIUM_FLAGS
        )
        try:
            page = await browser.new_page(viewport={"width": 420, "height": 860})
            await page.goto(f"http://127.0.0.1:{port}/owner/login?next=/owner")
            await page.fill("#password", OWNER[1])
            await page.click("#login")
            await page.wait_for_url(f"http://127.0.0.1:{port}/owner")
            alert = page.locator("#backup-failing")
            assert await alert.is_visible()
            assert "Backups are failing. backup failed: the backup folder is not mounted" in await alert.inner_text()
            card = await page.locator("#backups").inner_text()
            assert "01 Dec 2026, 10:00 UTC" in card and "20 Nov 2026, 09:00 UTC" in card
            assert "2,500,000 bytes, 4 backups" in card
            OUTPUT.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(OUTPUT / "backup-status.png"), full_page=True)
            await page.click(".menu > summary")  # a phone's width: the header's links are in its menu
            await page.click(".menu nav >> text=Data debits")
            await page.wait_for_url("**/owner/debits")
            assert await page.locator("#backup-failing").is_visible()  # on every page, not only the data page
        finally:
            await browser.close()


@dataclasses.dataclass(frozen=True)
class Archived:
    """A data folder (stopped) with a full backup, an incremental one on it, and three WAL segments
    archived after them."""

    data: Path
    folder: Path
    settings: Settings
    switched: list[str]

    def copy(self, tmp_path: Path) -> tuple[Path, Settings]:
        """A copy of the backup folder for a test to damage, and the settings that use it."""
        folder = tmp_path / "backups"
        shutil.copytree(self.folder, folder)
        return folder, self.settings.replace(backup_dir=str(folder))


@pytest.fixture(scope="module")
def archived(settings: Settings) -> Iterator[Archived]:
    root = pg.scratch_dir("hatd-backup-archive-")
    root.chmod(0o755)
    data, folder = root / "hat", root / "backups"
    try:
        for _ in ("full", "incr"):
            taken = hatd("backup", "run", env=hatd_env(root, data_dir=str(data), backup_dir=str(folder)), timeout=120)
            assert taken.returncode == 0, taken.stderr
        hat_settings = settings.replace(data_dir=data, backup_dir=str(folder), database_url="")
        server = EmbeddedPostgres(data, options=backups.server_options(hat_settings))
        server.start()
        try:

            async def switch() -> list[str]:
                conn = await asyncpg.connect(server.dsn())
                try:
                    await conn.execute("CREATE TABLE t (v int)")
                    names = []
                    for value in range(3):
                        await conn.execute(f"INSERT INTO t VALUES ({value})")
                        names.append(await conn.fetchval("SELECT pg_walfile_name(pg_switch_wal())"))
                    return names
                finally:
                    await conn.close()

            switched = asyncio.run(switch())
            deadline = time.monotonic() + 30
            while not (data / "wal-staging" / switched[-1]).exists():
                assert time.monotonic() < deadline, "PostgreSQL did not archive the WAL"
                time.sleep(0.1)
        finally:
            server.stop()
        store = Store(data, folder)
        store.ship_wal(keys.load_identity(keys.key_path(data)))
        yield Archived(data, folder, hat_settings, switched)
    finally:
        if (data / "postgres" / "postmaster.pid").exists():
            EmbeddedPostgres(data).stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_gap_in_the_wal_is_found_along_the_timelines_a_restore_follows() -> None:
    # Timeline 1 from segment 3; timeline 2 branched from it in segment 6 (which it holds itself).
    held = {(1, 3), (1, 4), (1, 5), (1, 6), (2, 6), (2, 7), (2, 8)}
    history = {2: [(1, 6)]}
    assert first_missing_wal(held, history, (1, 3)) is None
    assert first_missing_wal(held - {(1, 6)}, history, (1, 3)) is None  # the old timeline's copy is not needed
    assert first_missing_wal(held - {(1, 4)}, history, (1, 3)) == "000000010000000000000004"
    assert first_missing_wal(held - {(2, 7)}, history, (1, 3)) == "000000020000000000000007"
    assert first_missing_wal(held - {(2, 6)}, history, (1, 5)) == "000000020000000000000006"
    assert first_missing_wal(held - {(2, 8)}, history, (1, 3)) is None  # the newest one is the end
    assert first_missing_wal(held, history, (1, 2)) == "000000010000000000000002"  # from the backup's start
    assert first_missing_wal(held - {(1, 3)}, history, None) is None  # verify: from the first one there is
    assert first_missing_wal(held - {(1, 5)}, history, None) == "000000010000000000000005"
    assert first_missing_wal({(1, 0x1FF), (1, 0x200)}, {}, (1, 0x1FE)) == "0000000100000001000000FE"
    assert first_missing_wal(set(), {}, (1, 3)) is None
    with pytest.raises(BackupError, match="on timeline 3, which the newest timeline in the archive \\(4\\)"):
        first_missing_wal({(4, 9)}, {4: [(1, 5), (2, 7)]}, (3, 3))


@pytest.mark.slow
def test_a_missing_wal_file_is_named_by_verify_and_refused_by_restore_to_the_latest(
    archived: Archived, tmp_path: Path
) -> None:
    folder, settings = archived.copy(tmp_path)
    lost = archived.switched[1]
    (folder / "wal" / f"{lost}.zst.age").unlink()
    said: list[str] = []

    with pytest.raises(BackupError, match=f"^1 broken: {lost} \\(missing\\)$"):
        backups.verify_all(settings, said.append)
    assert f"MISSING {lost}: the archived WAL has a gap there; no moment after it can be restored" in said

    target = tmp_path / "restored"
    with pytest.raises(BackupError) as refused:
        restoring.restore(settings.replace(data_dir=target), folder, keys.key_path(archived.data), None, said.append)
    assert str(refused.value).startswith(f"the archived WAL has a gap: {lost} is missing from {folder / 'wal'}")
    assert not (target / "postgres").exists()


def stage(store: Store, *names: str) -> None:
    store.staging.mkdir(parents=True, exist_ok=True)
    for name in names:
        (store.staging / name).write_bytes(name.encode() * 1000)


async def test_wal_ships_while_a_job_runs_and_a_stop_waits_for_another_shipment_or_says_so(
    admin_dsn: str, settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = backups.BackupService(
        settings.replace(data_dir=tmp_path / "hat", backup_dir=str(tmp_path / "b"), database_url=""), admin_dsn
    )
    store = service.store
    wal = store.backup_dir / "wal"
    stage(store, "000000010000000000000003")
    with store.locked():  # a backup job runs, in this process or another
        await service._ship()
    assert [p.name for p in wal.iterdir()] == ["000000010000000000000003.zst.age"]
    assert store.pending_wal() == [] and store.read_state().wal_last == "000000010000000000000003.zst.age"

    # On the way out, another process is shipping: the stop waits for it, then ships the rest.
    stage(store, "000000010000000000000004")
    with store.locked(name=WAL_LOCK):
        shipping = asyncio.create_task(service._ship_last("000000010000000000000004", 10))
        await asyncio.sleep(0.3)
        assert not shipping.done()
    await shipping
    assert (wal / "000000010000000000000004.zst.age").exists() and store.pending_wal() == []

    # It does not let go: after the wait, the stop says loudly that the last WAL did not make it.
    stage(store, "000000010000000000000005")
    with caplog.at_level(logging.ERROR, logger="hatd.backup"), store.locked(name=WAL_LOCK):
        await service._ship_last("000000010000000000000005", 0.2)
    said = [r.getMessage() for r in caplog.records if r.name == "hatd.backup"]
    assert said == [
        f"BACKUP: the last WAL (000000010000000000000005) did not reach the backup folder {store.backup_dir} on the "
        f"way out; what PostgreSQL archived waits in {store.staging} (1 file(s)) and is shipped at the next start of "
        "`hatd serve`: until then the backups miss the latest changes"
    ]


async def test_a_full_backup_disk_is_recorded_and_said_once_not_a_traceback_every_tick(
    admin_dsn: str, settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = backups.BackupService(
        settings.replace(data_dir=tmp_path / "hat", backup_dir=str(tmp_path / "b"), database_url=""), admin_dsn
    )

    def full_disk(*args: object) -> None:
        raise pyrage.EncryptError("No space left on device (os error 28)")  # as pyrage says ENOSPC

    monkeypatch.setattr(pyrage, "encrypt_file", full_disk)
    stage(service.store, "000000010000000000000003")
    with caplog.at_level(logging.ERROR, logger="hatd.backup"):
        for _ in range(3):
            await service._ship()
        await service._ship_last(None, 1)  # a stop goes on: it says what is left behind

    error = f"cannot ship WAL to {service.store.backup_dir}: No space left on device (os error 28)"
    assert service.status().failure == error
    assert backups.gauges(service.status())["hatd_backup_failing"][1] == {"": 1.0}
    said = [r.getMessage() for r in caplog.records if r.name == "hatd.backup"]
    assert [r.exc_info for r in caplog.records] == [None, None]
    assert said[0].startswith(f"BACKUP: WAL is not reaching the backup folder ({error})")
    assert said[1].startswith("BACKUP: the last WAL did not reach the backup folder")
    assert len(said) == 2


async def test_a_backup_folder_gone_after_the_first_start_is_a_failure_not_made_again(
    admin_dsn: str, settings: Any, tmp_path: Path
) -> None:
    service = backups.BackupService(
        settings.replace(data_dir=tmp_path / "hat", backup_dir=str(tmp_path / "share"), database_url=""), admin_dsn
    )
    store, recipient = service.store, keys.recipient_of(service.identity)
    stage(store, "000000010000000000000003")
    await service._ship()  # the first start makes the folder
    assert (tmp_path / "share" / "recipient").read_text() == recipient + "\n"

    shutil.rmtree(tmp_path / "share")  # the share is not mounted
    stage(store, "000000010000000000000004")
    await service._ship()
    assert not (tmp_path / "share").exists()
    gone = service.status().failure
    assert gone is not None and gone.startswith(f"the backup folder {tmp_path / 'share'} is gone (a share not mounted")
    assert gone.endswith(f"echo {recipient} > {tmp_path / 'share' / 'recipient'}")
    assert [p.name for p in store.pending_wal()] == ["000000010000000000000004"]  # waiting, not lost

    (tmp_path / "share").mkdir()  # an empty mount point
    await service._ship()
    assert f"{tmp_path / 'share'} has lost its recipient file" in (service.status().failure or "")
    assert list((tmp_path / "share").iterdir()) == []

    (tmp_path / "share" / "recipient").write_text(recipient + "\n")  # the owner starts a new folder on purpose
    await service._ship()
    assert service.status().failure is None
    assert [p.name for p in store.wal_files()] == ["000000010000000000000004.zst.age"]


def test_a_backup_whose_chain_lost_a_link_cannot_be_restored_nor_taken_on() -> None:
    def backup(label: str, parent: str | None) -> Backup:
        return Backup(label, "incr" if parent else "full", parent, "", "", 1, "0/0", "0/0", "1", 0)

    full, incr1, incr2 = backup("f", None), backup("i1", "f"), backup("i2", "i1")
    assert chain_of(incr2, [full, incr1, incr2]) == [full, incr1, incr2]
    assert chain_of(incr2, [full, incr2]) is None
    assert restoring.choose([full, incr2], None) == [full]  # the newest whole chain


@pytest.mark.slow
def test_a_damaged_info_file_is_reported_by_verify_and_restore_uses_what_is_left(
    archived: Archived, tmp_path: Path, data_dir: Path
) -> None:
    folder, settings = archived.copy(tmp_path)
    (full,) = folder.glob("base/*-full")
    (incr,) = folder.glob("base/*-incr")
    info = incr / "info.json.age"
    damaged = bytearray(info.read_bytes())
    damaged[-5] ^= 0x01
    info.write_bytes(bytes(damaged))
    said: list[str] = []

    with pytest.raises(BackupError, match=f"^1 broken: {incr.name}$"):
        backups.verify_all(settings, said.append)
    assert said[0].startswith(f"BROKEN  {incr.name}: {info} is damaged or not sealed with this key")
    assert f"ok      {full.name}" in said  # it went on

    target = data_dir / "restored"  # where PostgreSQL's user may enter
    said.clear()
    done = restoring.restore(settings.replace(data_dir=target), folder, keys.key_path(archived.data), None, said.append)
    assert [b.label for b in done.chain] == [full.name]
    assert said[0].startswith(f"skipping the backup {incr.name}: {info} is damaged")
    assert done.reached is not None and (target / "postgres" / "PG_VERSION").exists()


@pytest.mark.slow
def test_a_hat_that_appears_while_a_restore_runs_is_left_alone(archived: Archived, tmp_path: Path) -> None:
    target = tmp_path / "hat"
    settings = archived.settings.replace(data_dir=target)
    key = keys.key_path(archived.data)

    def another_hat_appears(line: str) -> None:
        if line.startswith("opening"):  # a `hatd serve` started meanwhile, by systemd say
            (target / "postgres").mkdir(parents=True, exist_ok=True)
            (target / "postgres" / "PG_VERSION").write_text("18\n")

    with pytest.raises(BackupError) as refused:
        restoring.restore(settings, archived.folder, key, None, another_hat_appears)
    assert str(refused.value) == (
        f"{target / 'postgres'} appeared while the backups were being opened, and holds something: hatd restore "
        "never writes over it; it was left as it is, and nothing was restored"
    )
    assert os.listdir(target / "postgres") == ["PG_VERSION"]
    assert not (target / restoring.BUILD).exists()

    # A second restore into a folder where one is under way is refused, and does not touch it.
    shutil.rmtree(target / "postgres")
    (target / restoring.BUILD).mkdir()
    (target / restoring.BUILD / "half-built").touch()
    with pytest.raises(BackupError, match=r"another hatd restore into .* is under way"):
        restoring.restore(settings, archived.folder, key, None, print)
    assert os.listdir(target / restoring.BUILD) == ["half-built"]


def test_an_archive_failure_is_said_once_while_its_count_grows_and_keeps_its_start_time(
    admin_dsn: str, settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = backups.BackupService(
        settings.replace(data_dir=tmp_path / "hat", backup_dir=str(tmp_path / "b"), database_url=""), admin_dsn
    )
    on = {"archive_mode": "on", "archive_command": backups.ARCHIVE_COMMAND}
    then = dt.datetime(2026, 12, 7, 10, tzinfo=dt.UTC)

    def failing(count: int, wal: str = "000000010000000000000007") -> dict[str, Any]:
        failed = then + dt.timedelta(seconds=5 * count)
        return {"failed_count": count, "last_failed_wal": wal, "last_failed_time": failed, "last_archived_time": then}

    with caplog.at_level(logging.INFO, logger="hatd.backup"):
        service._judge_archiver(on, failing(1))
        started = service.status().failed_at
        for count in range(2, 6):  # PostgreSQL retries every few seconds
            service._judge_archiver(on, failing(count))
        assert service.status().failed_at == started
        assert "(000000010000000000000007, 5 failures so far)" in (service.status().failure or "")
        service._judge_archiver(on, {**failing(5), "last_archived_time": then + dt.timedelta(minutes=1)})

    said = [r.getMessage() for r in caplog.records if r.name == "hatd.backup"]
    assert len(said) == 2, said
    assert said[0].startswith("BACKUP: PostgreSQL cannot archive WAL (000000010000000000000007, 1 failures so far)")
    assert said[1] == "BACKUP: WAL archiving works again"
    assert service.status().failure is None


def test_a_restore_time_is_read_up_front_and_a_bad_one_refused_clearly() -> None:
    assert restoring.parse_target("latest") is None
    assert restoring.parse_target("2026-12-07T10:15:00+01:00") == dt.datetime(2026, 12, 7, 9, 15, tzinfo=dt.UTC)
    assert restoring.parse_target("2026-12-07T10:15") == dt.datetime(2026, 12, 7, 10, 15, tzinfo=dt.UTC)
    for text in ("9999-12-31T23:00:00-05:00", "0001-01-01T01:00:00+05:00"):
        with pytest.raises(BackupError) as refused:
            restoring.parse_target(text)
        assert str(refused.value) == f"--to {text!r} is out of range: in UTC it falls outside the years 1 to 9999"
    with pytest.raises(BackupError, match="is neither 'latest' nor a time"):
        restoring.parse_target("yesterday")


def test_backup_open_writes_its_plaintext_privately_and_never_over_the_file_or_into_the_folder(
    settings: Any, tmp_path: Path
) -> None:
    from hatd import cli

    hat = settings.replace(data_dir=tmp_path / "hat", backup_dir=str(tmp_path / "b"), database_url="")
    identity = keys.load_identity(keys.ensure_key(hat.data_dir)[0])
    (tmp_path / "b" / "wal").mkdir(parents=True)
    sealed = tmp_path / "b" / "wal" / "000000010000000000000003.zst.age"
    keys.seal_bytes(b"the owner's data", sealed, keys.recipient_of(identity))

    def open_into(out: Path) -> None:
        cli.cmd_backup(hat, argparse.Namespace(action="open", paths=[str(sealed), str(out)]))

    (tmp_path / "out").write_text("")
    (tmp_path / "out").chmod(0o644)
    open_into(tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"the owner's data"
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o600
    for out, said in [
        (sealed, f"{sealed} is the sealed file itself"),
        (tmp_path / "b" / "opened", f"{tmp_path / 'b' / 'opened'} is inside the backup folder {tmp_path / 'b'}"),
    ]:
        with pytest.raises(BackupError, match=f"^{re.escape(said)}"):
            open_into(out)
    assert sealed.read_bytes().startswith(AGE) and not (tmp_path / "b" / "opened").exists()


def test_a_backup_kept_without_the_wal_after_it_restores_to_its_own_end_only(tmp_path: Path) -> None:
    def backup(label: str, finished: str, start_lsn: str) -> Backup:
        return Backup(label, "full", None, finished, finished, 1, start_lsn, start_lsn, "1", 0)

    weekly = backup("w", "2026-11-20T03:00:00.000000Z", "0/3000028")
    daily = backup("d", "2026-12-01T03:00:00.000000Z", "0/9000028")
    archived = {"000000010000000000000009", "00000001000000000000000A"}
    at = dt.datetime(2026, 11, 20, 3, 0, 30, tzinfo=dt.UTC)
    assert restoring.own_end_only(weekly, [weekly, daily], archived, at)
    assert not restoring.own_end_only(daily, [weekly, daily], archived, at + dt.timedelta(days=12))
    assert not restoring.own_end_only(weekly, [weekly, daily], {"000000010000000000000003"}, at)
    with pytest.raises(BackupError) as refused:
        restoring.own_end_only(weekly, [weekly, daily], archived, at + dt.timedelta(hours=1))
    assert str(refused.value) == (
        "2026-11-20T04:00:30+00:00 cannot be reached: the newest backup by then, w, is kept without the WAL after "
        "it (retention keeps WAL for the daily window only), so it restores to its own end and no later. Ask --to "
        "2026-11-20T03:00:00.000000Z for that, or a moment from 2026-12-01T03:00:00.000000Z on"
    )
    store = Store(tmp_path / "hat", tmp_path / "b")
    state = store.read_state()
    state.oldest_restorable, state.any_moment_from = weekly.finished, daily.finished
    assert (
        "oldest restorable:   2026-11-20T03:00:00.000000Z (a kept backup's own end; any moment from "
        "2026-12-01T03:00:00.000000Z)" in backups.status_of(store, state).lines()
    )


@pytest.mark.slow
def test_a_backup_whose_wal_retention_dropped_restores_to_its_own_end(
    archived: Archived, tmp_path: Path, data_dir: Path
) -> None:
    folder, settings = archived.copy(tmp_path)
    identity = keys.load_identity(keys.key_path(archived.data))
    full, incr = Store(archived.data, folder).backups(identity)
    for path in (folder / "wal").iterdir():  # as retention leaves it when only the full one is weekly-kept
        if path.name[8:24] < lsn_position(incr.start_lsn):
            path.unlink()
    said: list[str] = []

    done = restoring.restore(
        settings.replace(data_dir=data_dir / "hat"), folder, keys.key_path(archived.data), full.finished_at, said.append
    )

    assert [b.label for b in done.chain] == [full.label]
    assert f"the WAL after {full.label} is no longer kept: restoring to the backup's own end" in said
    assert (data_dir / "hat" / "postgres" / "PG_VERSION").exists()


async def test_a_second_data_folder_does_not_take_over_a_backup_folder_unless_it_adopts_it(
    admin_dsn: str, settings: Any, tmp_path: Path
) -> None:
    from hatd import cli

    def hat(name: str) -> backups.BackupService:
        return backups.BackupService(
            settings.replace(data_dir=tmp_path / name, backup_dir=str(tmp_path / "b"), database_url=""), admin_dsn
        )

    original = hat("original")
    stage(original.store, "000000010000000000000003")
    await original._ship()
    (tmp_path / "copy").mkdir()  # a restored copy: the same key, served against the same folder
    shutil.copyfile(tmp_path / "original" / "backup.key", tmp_path / "copy" / "backup.key")
    copy = hat("copy")
    stage(copy.store, "000000010000000000000004")
    await copy._ship()
    refused = copy.status().failure or ""
    assert refused.startswith(f"{tmp_path / 'b'} is backed up into by another data folder")
    assert refused.endswith(
        "if the original HAT is gone for good, make this one the folder's writer with `hatd backup adopt`"
    )
    assert [p.name for p in copy.store.pending_wal()] == ["000000010000000000000004"]

    cli.cmd_backup(copy.settings, argparse.Namespace(action="adopt", paths=[]))
    await copy._ship()
    assert copy.status().failure is None and copy.store.pending_wal() == []
    await original._ship()
    assert "is backed up into by another data folder" in (original.status().failure or "")


async def test_an_archived_wal_file_is_never_replaced_by_a_different_one(
    admin_dsn: str, settings: Any, tmp_path: Path
) -> None:
    service = backups.BackupService(
        settings.replace(data_dir=tmp_path / "hat", backup_dir=str(tmp_path / "b"), database_url=""), admin_dsn
    )
    store, name = service.store, "00000002.history"
    (store.staging).mkdir(parents=True)
    (store.staging / name).write_text("1\t0/3000000\tno recovery target specified\n")
    await service._ship()
    sealed = store.backup_dir / "wal" / f"{name}.zst.age"
    before = sealed.read_bytes()

    (store.staging / name).write_text("1\t0/5000000\tno recovery target specified\n")  # another HAT's timeline 2
    await service._ship()
    assert sealed.read_bytes() == before
    assert (service.status().failure or "").startswith(f"{sealed} already holds a different {name}")
    assert [p.name for p in store.pending_wal()] == [name]

    (store.staging / name).write_text("1\t0/3000000\tno recovery target specified\n")  # shipped before a crash
    await service._ship()
    assert sealed.read_bytes() == before and store.pending_wal() == [] and service.status().failure is None


def test_a_replay_that_ends_short_of_the_target_after_the_start_is_refused_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the restore test can lose on a busy machine: pg_ctl returns once the server takes
    connections (hot standby, still replaying), then recovery ends short of the target and the
    server exits. That is the same refusal as a start that fails, not "PostgreSQL stopped"."""
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "server.log").write_text(
        "LOG:  redo done at 0/500D6F0\nFATAL:  recovery ended before configured recovery target was reached\n"
    )

    class StartsThenStops:
        def __init__(self, data_dir: Path, *, options: dict[str, str]) -> None:
            pass

        def start(self) -> None:
            pass

        def stop(self) -> None:
            pass

        def dsn(self) -> str:
            return "postgresql://nobody@/nothing"

    async def closed(dsn: str) -> bool:
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    monkeypatch.setattr(restoring, "EmbeddedPostgres", StartsThenStops)
    monkeypatch.setattr(restoring, "_in_recovery", closed)
    with pytest.raises(keys.BackupError, match=r"^the backups end before 2030-01-01T00:00:00Z: that moment is not"):
        restoring._replay(tmp_path, {"recovery_target_time": "2030-01-01T00:00:00Z"}, None)
