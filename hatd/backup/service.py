"""Backups as hatd runs them: the embedded server's archiving settings, a whole backup job (`hatd
backup run`, and what `hatd serve` starts on schedule), the status that `hatd backup status`,
/metrics and the owner's pages show, and the background task of `hatd serve` that ships WAL,
starts the scheduled jobs in a process of their own (so requests never wait on them), and says a
failure loudly, once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import pwd
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pyrage
from aiohttp import web

from hatd import db
from hatd.backup import keys, take
from hatd.backup.keys import BackupError
from hatd.backup.store import (
    SEALED,
    STAGING,
    WAL_LOCK,
    Backup,
    State,
    Store,
    chain_of,
    first_missing_wal,
    is_wal_name,
    iso,
    now,
    parse_history,
    parse_time,
    segment_index,
    wal_position,
)
from hatd.backup.take import record_failure, record_success, take_base_backup, when_due
from hatd.embedded import SYSTEM_USER, EmbeddedPostgres
from hatd.settings import Settings

log = logging.getLogger("hatd.backup")
Q = db.queries("backup")

# archive_command runs in the data directory (<data_dir>/postgres): it copies each finished WAL
# file to <data_dir>/wal-staging, durably, under a temporary name renamed at the end, so hatd
# never seals half a file. It runs as PostgreSQL's own user (hatd-postgres when hatd is root),
# which needs no access to the backup folder or the key: hatd seals and ships what is staged.
ARCHIVE_COMMAND = (
    f"cp %p ../{STAGING}/%f.part && sync ../{STAGING}/%f.part && mv -f ../{STAGING}/%f.part ../{STAGING}/%f"
)
# The longest a committed transaction waits in an unfinished WAL file before it is archived.
ARCHIVE_TIMEOUT = 60
# How often `hatd serve` ships staged WAL and looks at the schedule, in seconds.
TICK = 5.0
# On the way out, how long to wait for another process shipping WAL, in seconds.
FINISH_SHIP_WAIT = 30.0
# A failed job is tried again after this long (or the backup interval, if shorter).
RETRY = 900


def server_options(settings: Settings) -> dict[str, str]:
    """The embedded server's settings for continuous archiving (none when backups are off), with
    the staging folder made for PostgreSQL's user."""
    if settings.database_url or settings.backup_path is None:
        return {}
    data_dir = settings.data_dir.resolve()
    staging = data_dir / STAGING
    staging.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.geteuid() == 0:
        with contextlib.suppress(KeyError):  # made by EmbeddedPostgres.start when missing: then chown later
            user = pwd.getpwnam(SYSTEM_USER)
            os.chown(staging, user.pw_uid, user.pw_gid)
    return {
        "archive_mode": "on",
        "archive_command": ARCHIVE_COMMAND,
        "archive_timeout": str(ARCHIVE_TIMEOUT),
        # WAL summaries: what pg_basebackup --incremental needs to copy only the changed blocks.
        "summarize_wal": "on",
        "wal_summary_keep_time": f"{max(10 * 86400, 2 * settings.backup_full_interval) // 60}min",
        # New WAL files zero-filled rather than recycled: a file switched early by archive_timeout
        # then compresses to almost nothing.
        "wal_recycle": "off",
    }


def fix_staging_owner(settings: Settings) -> None:
    """The staging folder belongs to PostgreSQL's user (it may not have existed before the first start)."""
    staging = settings.data_dir.resolve() / STAGING
    if os.geteuid() == 0 and staging.is_dir():
        user = pwd.getpwnam(SYSTEM_USER)
        os.chown(staging, user.pw_uid, user.pw_gid)


def store_for(settings: Settings) -> Store:
    path = settings.backup_path
    if path is None:
        raise BackupError('backups are off (HATD_BACKUP_DIR is "off"; with HATD_DATABASE_URL set one to get exports)')
    return Store(settings.data_dir, path)


def first_start_notice(settings: Settings) -> str | None:
    """Makes the key if there is none; the words to print when it was made now."""
    if settings.backup_path is None:
        return None
    path, made = keys.ensure_key(settings.data_dir)
    if not made:
        return None
    store = store_for(settings)
    same_disk = _same_disk(settings.data_dir, store.backup_dir)
    lines = [
        f"\n  Backups go to {store.backup_dir}, encrypted to the key in:\n\n      {path.resolve()}\n",
        "  Keep a copy of that file somewhere else (a password manager, a USB stick): without it the",
        "  backups cannot be read, and it is lost with this disk. `hatd backup key` shows it again.",
    ]
    if same_disk:
        lines.append("  The backups are on the same disk as the HAT: set HATD_BACKUP_DIR to another disk or a share.")
    return "\n".join(lines) + "\n"


def _same_disk(data_dir: Path, backup_dir: Path) -> bool:
    probe = backup_dir
    while not probe.exists():
        probe = probe.parent
    return os.stat(data_dir).st_dev == os.stat(probe).st_dev


async def _system_identifier(dsn: str) -> str:
    async with db.connection(dsn) as conn:
        value: str = await conn.fetchval(Q.system_identifier)
        return value


def backup_now(
    settings: Settings, embedded: EmbeddedPostgres, *, full: bool = False, scheduled: bool = False
) -> Backup | None:
    """One whole job: ship the staged WAL, take and verify a base backup, apply the retention
    rule, ship again. Records the outcome in the state; BackupError on failure. A scheduled job
    that finds the backup no longer due (another `hatd serve` on the same data folder took it
    while this one waited for the lock) does nothing and returns None."""
    store = store_for(settings)
    identity = keys.load_identity(keys.ensure_key(settings.data_dir)[0])
    with store.locked():
        state = store.read_state()
        if (
            scheduled
            and state.failure is None
            and when_due(state, settings.backup_interval, settings.backup_full_interval, now()) is None
        ):
            return None
        try:
            store.open_folder(keys.recipient_of(identity))
            store.clear_partial()
            _ship(store, identity)
            assert embedded.socket_dir is not None
            system = asyncio.run(_system_identifier(embedded.dsn()))
            taken = take_base_backup(store, identity, embedded.socket_dir, system, full=full)
            _ship(store, identity)
            kept = store.retain(store.backups(identity), settings.backup_keep_daily, settings.backup_keep_weekly, now())
        except (BackupError, OSError, pyrage.EncryptError, asyncpg.PostgresError) as exc:
            message = f"backup failed: {exc}"
            record_failure(store, message)
            raise BackupError(message) from None
        record_success(store, taken, kept)
    return taken


def verify_all(settings: Settings, say: Callable[[str], None]) -> int:
    """Open and check every backup (pg_verifybackup, or an export's digests) and every archived
    WAL file; BackupError naming each one that fails. Returns how many backups were checked."""
    store = store_for(settings)
    identity = keys.load_identity(keys.key_path(settings.data_dir))
    broken = []
    with store.locked():
        bases, broken_bases = store.scan(identity)
        exported, broken_exports = store.scan(identity, kind="export")
        found = bases + exported
        for label, problem in broken_bases + broken_exports:
            say(f"BROKEN  {label}: {problem}")
            broken.append(label)
        for backup in bases:
            if backup.parent is not None and chain_of(backup, bases) is None:
                say(f"BROKEN  {backup.label}: it was taken on {backup.parent}, which is missing or damaged")
                broken.append(backup.label)
        for backup in found:
            try:
                if backup.kind == "export":
                    take.verify_export(store, store.backup_folder(backup), identity)
                else:
                    take.verify_sealed(store, store.backup_folder(backup), identity)
                say(f"ok      {backup.label}")
            except BackupError as exc:
                say(f"BROKEN  {backup.label}: {exc}")
                broken.append(backup.label)
        scratch = store.fresh_work("verify-wal")
        segments: set[tuple[int, int]] = set()
        histories: dict[int, list[tuple[int, int]]] = {}
        for path in store.wal_files():
            name = path.name.removesuffix(SEALED)
            try:
                keys.open_sealed(path, scratch / "wal", identity, scratch)
            except BackupError as exc:
                say(f"BROKEN  {path.name}: {exc}")
                broken.append(path.name)
                continue
            position = wal_position(name)
            if is_wal_name(name) and position is None:
                histories[int(name[:8], 16)] = parse_history((scratch / "wal").read_text())
            elif position is not None and not name.endswith((".partial", ".backup")):
                segments.add((int(name[:8], 16), segment_index(position)))
        shutil.rmtree(scratch, ignore_errors=True)
        missing = first_missing_wal(segments, histories, None)
        if missing is not None:
            say(f"MISSING {missing}: the archived WAL has a gap there; no moment after it can be restored")
            broken.append(f"{missing} (missing)")
    if broken:
        raise BackupError(f"{len(broken)} broken: {', '.join(broken)}")
    return len(found)


def export_now(settings: Settings) -> Backup:
    """On another PostgreSQL server: an encrypted export (docs/export.md) into the folder, verified,
    under the same retention rule."""
    store = store_for(settings)
    identity = keys.load_identity(keys.ensure_key(settings.data_dir)[0])
    with store.locked():
        try:
            store.open_folder(keys.recipient_of(identity))
            store.clear_partial()
            taken = take.take_export(store, identity, settings.database_url, settings)
            exported = store.backups(identity, kind="export")
            kept = store.retain(exported, settings.backup_keep_daily, settings.backup_keep_weekly, now())
        except (BackupError, OSError, pyrage.EncryptError, asyncpg.PostgresError) as exc:
            message = f"export backup failed: {exc}"
            record_failure(store, message)
            raise BackupError(message) from None
        record_success(store, taken, kept)
    return taken


def _ship(store: Store, identity: Any, wait: bool | float = True) -> int | None:
    """Seal the staged WAL into the folder under the WAL lock (not the job's: WAL ships while a job
    runs), recording the outcome; how many files were shipped, or None when another process held
    the lock (with wait=False, or for longer than `wait` seconds)."""
    with store.locked(wait, name=WAL_LOCK) as held:
        if not held:
            return None
        problem = None
        try:
            store.open_folder(keys.recipient_of(identity))
            shipped = store.ship_wal(identity)
        except BackupError as exc:
            problem = str(exc)
        except (OSError, pyrage.EncryptError) as exc:
            problem = f"cannot ship WAL to {store.backup_dir}: {keys.describe(exc)}"
        if problem is not None:
            with store.changing_state() as state:
                state.wal_error = problem
            raise BackupError(problem)
        if shipped or store.read_state().wal_error:
            files = store.wal_files() if shipped else []
            with store.changing_state() as state:
                state.wal_error = None
                if shipped:
                    state.wal_shipped_at = iso(now())
                    state.wal_last = files[-1].name if files else None
        return shipped


@dataclass(frozen=True)
class Status:
    """What the owner sees: status, /metrics, the pages."""

    enabled: bool
    folder: str | None
    last_good: str | None
    last_good_at: str | None
    oldest_restorable: str | None
    latest_restorable: str | None
    size: int
    count: int
    failure: str | None
    failed_at: str | None
    wal_pending: int
    wal_error: str | None
    any_moment_from: str | None = None  # older kept backups restore to their own end only

    def lines(self) -> list[str]:
        if not self.enabled:
            return ['backups: off (HATD_BACKUP_DIR is "off", or HATD_DATABASE_URL is set and HATD_BACKUP_DIR is not)']
        return [
            f"folder:              {self.folder}",
            f"last good backup:    {self.last_good or 'none yet'}"
            + (f" ({self.last_good_at})" if self.last_good_at else ""),
            f"oldest restorable:   {self.oldest_restorable or 'none'}"
            + (
                f" (a kept backup's own end; any moment from {self.any_moment_from})"
                if self.any_moment_from and self.any_moment_from != self.oldest_restorable
                else ""
            ),
            f"latest restorable:   {self.latest_restorable or 'none'}",
            f"backups kept:        {self.count} ({self.size:,} bytes in the folder)",
            f"WAL waiting to ship: {self.wal_pending} file(s)" + (f": {self.wal_error}" if self.wal_error else ""),
            f"last failure:        {self.failure} ({self.failed_at})" if self.failure else "last failure:        none",
        ]


def _stamp(text: str | None) -> float:
    return parse_time(text).timestamp() if text else 0.0


def gauges(status: Status) -> dict[str, tuple[str, dict[str, float]]]:
    """The /metrics gauges of the backups (0 for a time: none yet)."""
    return {
        "hatd_backup_last_success_timestamp_seconds": (
            "When the last verified backup finished (unix time; 0: none yet).",
            {"": _stamp(status.last_good_at)},
        ),
        "hatd_backup_oldest_restorable_timestamp_seconds": (
            "The oldest moment the kept backups restore to (unix time).",
            {"": _stamp(status.oldest_restorable)},
        ),
        "hatd_backup_latest_restorable_timestamp_seconds": (
            "The latest moment the backup folder holds: the last backup or WAL shipped (unix time).",
            {"": _stamp(status.latest_restorable)},
        ),
        "hatd_backup_size_bytes": ("Bytes in the backup folder.", {"": float(status.size)}),
        "hatd_backup_kept": ("Base backups kept.", {"": float(status.count)}),
        "hatd_backup_failing": (
            "1 while the last backup job or WAL shipping failed.",
            {"": float(bool(status.failure))},
        ),
        "hatd_backup_wal_pending_files": (
            "WAL files archived by PostgreSQL but not yet sealed into the backup folder.",
            {"": float(status.wal_pending)},
        ),
    }


def status(settings: Settings) -> Status:
    if settings.backup_path is None:
        return Status(False, None, None, None, None, None, 0, 0, None, None, 0, None)
    store = store_for(settings)
    return status_of(store, store.read_state())


def status_of(store: Store, state: State) -> Status:
    latest = max(filter(None, [state.last_good_at, state.wal_shipped_at]), default=None)
    return Status(
        enabled=True,
        folder=str(store.backup_dir),
        last_good=state.last_good,
        last_good_at=state.last_good_at,
        oldest_restorable=state.oldest_restorable,
        latest_restorable=latest,
        size=state.size,
        count=state.count,
        failure=state.failure or state.wal_error,
        failed_at=state.failed_at,
        wal_pending=len(store.pending_wal()),
        wal_error=state.wal_error,
        any_moment_from=state.any_moment_from,
    )


class BackupService:
    """`hatd serve`'s backups: every TICK seconds, ship the staged WAL, watch the archiver, and
    start a due job as a `hatd backup run` process; a failure is logged once, until a success."""

    def __init__(self, settings: Settings, admin_dsn: str) -> None:
        self.settings = settings
        # The embedded server: WAL and base backups. Another PostgreSQL: exports only.
        self.physical = not settings.database_url
        self.store = store_for(settings)
        self.admin_dsn = admin_dsn
        self.identity = keys.load_identity(keys.ensure_key(settings.data_dir)[0])
        self.job: asyncio.subprocess.Process | None = None
        self.archive_error: str | None = None
        self.archive_failed_at: str | None = None  # since when archiving has been failing
        self._archive_key: str | None = None
        self._wal_said = False

    def status(self) -> Status:
        found = status_of(self.store, self.store.read_state())
        if self.archive_error and not found.failure:
            return dataclasses.replace(found, failure=self.archive_error, failed_at=self.archive_failed_at)
        return found

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("the backup task failed; it goes on")
            await asyncio.sleep(TICK)

    async def tick(self) -> None:
        if self.physical:
            await self._ship()
            await self._watch_archiver()
        state = self.store.read_state()
        due = when_due(state, self.settings.backup_interval, self.settings.backup_full_interval, now())
        if state.failure and state.failed_at:
            retry = dt.timedelta(seconds=min(RETRY, self.settings.backup_interval))
            due = due if now() - parse_time(state.failed_at) >= retry else None
        if due is not None:
            await self._job(full=due == "full")
        self._announce()

    async def _ship(self, wait: bool | float = False) -> None:
        """Ship the staged WAL, unless another process is shipping it (then it waits `wait` s)."""
        try:
            await asyncio.to_thread(_ship, self.store, self.identity, wait)
            self._wal_said = False
        except (BackupError, OSError, pyrage.EncryptError) as exc:
            if not self._wal_said:
                log.error(
                    "BACKUP: WAL is not reaching the backup folder (%s); it waits in %s and will be shipped when "
                    "the folder is back",
                    exc,
                    self.store.staging,
                )
                self._wal_said = True

    async def _watch_archiver(self) -> None:
        """PostgreSQL's side of the WAL: archiving on, and archive_command succeeding. A failure is
        logged once (until archiving works again) and shown as the backups' failure meanwhile."""
        async with db.connection(self.admin_dsn) as conn:
            settings = await conn.fetchrow(Q.archiving)
            row = await conn.fetchrow(Q.archiver)
        self._judge_archiver(settings, row)

    def _judge_archiver(self, settings: Any, row: Any) -> None:
        """Say a new archiving problem once: the same one is known by its kind and the WAL file that
        failed, not by its words (they hold a count that grows at every retry)."""
        problem, key = None, None
        if settings["archive_mode"] != "on" or settings["archive_command"] != ARCHIVE_COMMAND:
            key = "off"
            problem = (
                "WAL archiving is not on in the running PostgreSQL (a server started by an older hatd, or by hand): "
                "stop every hatd process using this data folder and start `hatd serve` again"
            )
        elif row["last_failed_time"] is not None and (
            row["last_archived_time"] is None or row["last_failed_time"] > row["last_archived_time"]
        ):
            key = f"failing {row['last_failed_wal']}"
            problem = (
                f"PostgreSQL cannot archive WAL ({row['last_failed_wal']}, {row['failed_count']} failures so far): "
                f"WAL piles up in {self.store.data_dir / 'postgres' / 'pg_wal'} until it can; see "
                f"{self.store.data_dir / 'postgres' / 'server.log'}, and check that {self.store.staging} exists, "
                "has room, and that PostgreSQL's user may write there"
            )
        if key is not None and key != self._archive_key:
            log.error("BACKUP: %s", problem)
        elif key is None and self._archive_key is not None:
            log.info("BACKUP: WAL archiving works again")
        if key is None:
            self.archive_failed_at = None
        elif self.archive_failed_at is None:
            self.archive_failed_at = iso(now())
        self._archive_key, self.archive_error = key, problem

    async def _job(self, *, full: bool) -> None:
        args = [sys.executable, "-m", "hatd", "backup", "run", "--scheduled"] + (["--full"] if full else [])
        log.info("starting a scheduled %s backup", "full" if full else "incremental")
        self.job = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=os.environ.copy()
        )
        output, _ = await self.job.communicate()
        code, self.job = self.job.returncode, None
        if code == 0:
            log.info("backup done: %s", output.decode(errors="replace").strip().splitlines()[-1:])
        elif code is not None and code > 0 and self.store.read_state().failure is None:
            record_failure(self.store, f"backup failed: {output.decode(errors='replace').strip()[-2000:]}")

    def _announce(self) -> None:
        found = self.store.read_state()
        if not found.failure or found.announced:
            return
        with self.store.changing_state() as state:
            if state.failure and not state.announced:
                log.error("BACKUP FAILED (%s): %s", state.failed_at, state.failure)
                state.announced = True

    async def finish(self) -> None:
        """On the way out: stop a job under way (its partial backup is cleared next time), then
        close the current WAL file and ship it, so a clean stop leaves nothing unarchived."""
        if self.job is not None and self.job.returncode is None:
            self.job.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.job.wait(), 30)
        if not self.physical:
            return
        switched = None
        try:
            async with db.connection(self.admin_dsn) as conn:
                switched = await conn.fetchval(Q.switch_wal)
                deadline = asyncio.get_running_loop().time() + 20
                while asyncio.get_running_loop().time() < deadline:
                    done = (await conn.fetchrow(Q.archiver))["last_archived_wal"]
                    if done is not None and done[8:24] >= switched[8:24]:
                        break
                    await asyncio.sleep(0.1)
        except (OSError, pyrage.EncryptError, asyncpg.PostgresError) as exc:
            log.error("BACKUP: the last WAL could not be archived on the way out: %s", exc)
        await self._ship_last(switched, FINISH_SHIP_WAIT)

    async def _ship_last(self, switched: str | None, wait: float) -> None:
        """Ship what is staged, waiting up to `wait` s for another process shipping WAL; say
        loudly when the last WAL file (`switched`) or anything staged did not reach the folder."""
        await self._ship(wait)
        pending = [p.name for p in self.store.pending_wal()]
        missing = switched is not None and not (self.store.backup_dir / "wal" / (switched + SEALED)).exists()
        if pending or missing:
            log.error(
                "BACKUP: the last WAL%s did not reach the backup folder %s on the way out; what PostgreSQL archived "
                "waits in %s (%d file(s)) and is shipped at the next start of `hatd serve`: until then the backups "
                "miss the latest changes",
                f" ({switched})" if missing else "",
                self.store.backup_dir,
                self.store.staging,
                len(pending),
            )


# The running service, for /metrics and the owner's pages (set by `hatd serve` only).
SERVICE = web.AppKey("backup_service", BackupService)


def serve_context(service: BackupService) -> Callable[[Any], AsyncIterator[None]]:
    """An aiohttp cleanup_ctx running the service for the app's life."""

    async def context(app: Any) -> AsyncIterator[None]:
        task = asyncio.create_task(service.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await service.finish()

    return context
