"""`hatd restore`: a new data folder from the backups, to the latest moment they hold or to a given
time. The chain of backups that ends before that time is opened and verified (pg_verifybackup) in
a scratch folder, combined (pg_combinebackup) when it holds incremental backups, and PostgreSQL
then replays the archived WAL up to the moment asked for, and starts a new timeline there. Never
writes over an existing HAT: the data folder must hold no cluster, when it starts and when the
restored one is put in place."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import pwd
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pyrage

from hatd import db
from hatd.backup import keys
from hatd.backup.keys import BackupError
from hatd.backup.service import fix_staging_owner, server_options
from hatd.backup.store import (
    RECIPIENT,
    SEALED,
    Backup,
    Store,
    chain_of,
    first_missing_wal,
    is_wal_name,
    lsn_position,
    parse_history,
    segment_index,
    start_segment,
    wal_position,
)
from hatd.backup.take import open_backup, pg_program, run_program, verify_plain
from hatd.embedded import SYSTEM_USER, EmbeddedError, EmbeddedPostgres
from hatd.settings import Settings

log = logging.getLogger("hatd.backup")
Q = db.queries("backup")
# Where a restore builds the new cluster and stages the WAL, beside HATD_DATA_DIR/postgres.
BUILD = "restore-build"
# A --to this close after a backup kept without the WAL after it restores to that backup's end.
OWN_END_GRACE = dt.timedelta(minutes=1)
# The longest a restore waits for PostgreSQL to replay the WAL, in seconds.
REPLAY_TIMEOUT = 6 * 3600


@dataclass(frozen=True)
class Restored:
    data_dir: Path
    chain: list[Backup]
    target: dt.datetime | None
    wal_files: int
    reached: dt.datetime | None  # the commit time of the last transaction replayed (None: none was)


def parse_target(text: str) -> dt.datetime | None:
    """None for "latest", else the time (no zone given: UTC); BackupError if it is neither."""
    if text.strip().lower() == "latest":
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BackupError(f"--to {text!r} is neither 'latest' nor a time like 2026-12-07T10:15:00Z") from None
    try:
        # In UTC now, as PostgreSQL is given it: a time whose UTC falls outside years 1-9999 is refused here.
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except OverflowError:
        raise BackupError(f"--to {text!r} is out of range: in UTC it falls outside the years 1 to 9999") from None


def choose(backups: list[Backup], target: dt.datetime | None) -> list[Backup]:
    """The chain (full first) to restore from: the last backup finished by `target` that has every
    backup it was taken on, and those."""
    bases = [b for b in backups if b.kind != "export"]
    if not bases:
        raise BackupError("the folder holds no base backup")
    before = bases if target is None else [b for b in bases if b.finished_at <= target]
    if not before:
        assert target is not None
        raise BackupError(
            f"no backup finished by {target.isoformat()}: the oldest moment these backups restore to is "
            f"{bases[0].finished}"
        )
    for chosen in reversed(before):
        chain = chain_of(chosen, bases)
        if chain is not None:
            return chain
    raise BackupError(
        f"every backup finished by then was taken on one that is missing or damaged ({before[0].parent}): "
        "there is no whole chain to restore from"
    )


def own_end_only(chosen: Backup, backups: list[Backup], archived: set[str], target: dt.datetime | None) -> bool:
    """Whether `chosen` is to be restored to its own end only: a backup the weekly rule kept without
    the WAL after it (retention keeps WAL for the daily window). Fine for a --to at or just after its
    end (within OWN_END_GRACE); refused for a later one, which it cannot reach."""
    if target is None or start_segment(chosen) in archived:
        return False
    if target - chosen.finished_at <= OWN_END_GRACE:
        return True
    covered = [b for b in backups if b.kind != "export" and start_segment(b) in archived]
    later = f", or a moment from {covered[0].finished} on" if covered else ""
    raise BackupError(
        f"{target.isoformat()} cannot be reached: the newest backup by then, {chosen.label}, is kept without the "
        f"WAL after it (retention keeps WAL for the daily window only), so it restores to its own end and no "
        f"later. Ask --to {chosen.finished} for that{later}"
    )


def restore(
    settings: Settings, backup_dir: Path, key: Path, target: dt.datetime | None, say: Callable[[str], None]
) -> Restored:
    if settings.database_url:
        raise BackupError(
            "hatd restore makes a new data folder for the embedded PostgreSQL: unset HATD_DATABASE_URL (a HAT "
            "on another server is restored from an export with `hatd import`)"
        )
    data_dir = settings.data_dir.resolve()
    pgdata = data_dir / "postgres"
    if pgdata.exists() and any(pgdata.iterdir()):
        raise BackupError(
            f"{data_dir} already holds a HAT ({pgdata}): hatd restore never writes over one. Restore into a new "
            "folder (HATD_DATA_DIR), check it, then swap the folders yourself"
        )
    if not (backup_dir / RECIPIENT).exists():
        raise BackupError(f"{backup_dir} is not a hatd backup folder (it has no {RECIPIENT} file)")
    identity = keys.load_identity(key)
    if (backup_dir / RECIPIENT).read_text().strip() != keys.recipient_of(identity):
        raise BackupError(f"the backups in {backup_dir} are sealed to another key than the one in {key}")
    store = Store(data_dir, backup_dir)
    found, broken = store.scan(identity)
    for label, problem in broken:
        say(f"skipping the backup {label}: {problem}")
    chain = choose(found, target)
    newest = [b for b in found if b.kind != "export" and (target is None or b.finished_at <= target)]
    if newest and newest[-1] != chain[-1]:
        say(f"the newest backup by then, {newest[-1].label}, was taken on one that is missing: using {chain[-1].label}")
    archived = {path.name.removesuffix(SEALED) for path in store.wal_files()}
    immediate = own_end_only(chain[-1], found, archived, target)
    data_dir.mkdir(parents=True, exist_ok=True)
    # The restore is built in a folder of its own, claimed by an exclusive mkdir (a second restore
    # into the same folder is refused), and renamed onto the data folder's postgres/ only when
    # whole: a rename that fails if anything appeared there meanwhile. Nothing this run did not
    # make is ever removed.
    build = data_dir / BUILD
    try:
        build.mkdir(mode=0o700)
    except FileExistsError:
        raise BackupError(
            f"{build} exists: another hatd restore into {data_dir} is under way, or one was cut short (then remove "
            "that folder and start again)"
        ) from None
    scratch, wal_dir, cluster = build / "open", build / "wal", build / "postgres"
    claimed = False
    try:
        opened = []
        for backup in chain:
            say(f"opening and verifying the {backup.kind} backup {backup.label}")
            plain = open_backup(store, store.backup_folder(backup), identity, scratch / backup.label)
            verify_plain(plain, store.backup_folder(backup))
            opened.append(plain)
        if len(opened) == 1:
            opened[0].rename(cluster)
        else:
            say(f"combining {len(opened)} backups")
            run_program(pg_program("pg_combinebackup"), *map(str, opened), "-o", str(cluster), what="pg_combinebackup")
            (cluster / "pg_wal").mkdir(exist_ok=True)
            for segment in (opened[-1] / "pg_wal").iterdir():
                if segment.is_file() and not (cluster / "pg_wal" / segment.name).exists():
                    shutil.copy2(segment, cluster / "pg_wal" / segment.name)
        shutil.rmtree(scratch, ignore_errors=True)
        # The old server's socket lock (its socket folder was its data folder) came along in the copy.
        for left in cluster.glob(".s.PGSQL.*"):
            left.unlink()
        if immediate:
            say(f"the WAL after {chain[-1].label} is no longer kept: restoring to the backup's own end")
            wal_dir.mkdir(mode=0o700)
            wal_count, missing = 0, None
        else:
            wal_count, missing = _stage_wal(store, identity, chain[-1], wal_dir)
        if missing is not None and target is None:
            raise BackupError(
                f"the archived WAL has a gap: {missing} is missing from {backup_dir / 'wal'}, and replay stops at "
                "a gap, so the latest moment cannot be reached; nothing was restored. Restore to a time before it "
                "(--to), or put the file back"
            )
        (cluster / "recovery.signal").touch()
        try:
            # rename(2) replaces an empty folder but fails on one that holds anything.
            os.rename(cluster, pgdata)
        except OSError:
            raise BackupError(
                f"{pgdata} appeared while the backups were being opened, and holds something: hatd restore never "
                "writes over it; it was left as it is, and nothing was restored"
            ) from None
        claimed = True
        say(f"replaying {wal_count} archived WAL file(s) up to {target.isoformat() if target else 'the latest'}")
        options = server_options(settings)
        _hand_over(pgdata, build)
        options |= {
            "restore_command": f"cp ../{BUILD}/wal/%f %p",
            "recovery_target_action": "promote",
            "recovery_target_timeline": "latest",
        }
        if immediate:
            options["recovery_target"] = "immediate"  # as soon as the backup is consistent: its end
        elif target is not None:
            options["recovery_target_time"] = target.astimezone(dt.UTC).isoformat(sep=" ")
        reached = _replay(data_dir, options, missing)
        fix_staging_owner(settings)
    except BaseException:
        # Nothing half-made is left looking like a HAT; only what this run made is removed.
        if claimed:
            shutil.rmtree(pgdata, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    keys.copy_key(key, data_dir)
    return Restored(data_dir, chain, target, wal_count, reached)


def _stage_wal(store: Store, identity: pyrage.x25519.Identity, last: Backup, wal_dir: Path) -> tuple[int, str | None]:
    """Opens the archived WAL from the start of `last` on, and every timeline history file; the
    count staged and the first segment missing before the newest one archived (None: unbroken)."""
    wal_dir.mkdir(mode=0o700)
    first = lsn_position(last.start_lsn)
    segments: set[tuple[int, int]] = set()
    histories: dict[int, list[tuple[int, int]]] = {}
    count = 0
    for path in store.wal_files():
        name = path.name.removesuffix(SEALED)
        if not is_wal_name(name) or name.endswith((".partial", ".backup")):
            continue
        position = wal_position(name)
        if position is None or position >= first:
            keys.open_sealed(path, wal_dir / name, identity, wal_dir)
            count += 1
        if position is None:
            histories[int(name[:8], 16)] = parse_history((wal_dir / name).read_text())
        else:
            segments.add((int(name[:8], 16), segment_index(position)))
    missing = first_missing_wal(segments, histories, (last.timeline, segment_index(first)))
    return count, missing


def _hand_over(pgdata: Path, build: Path) -> None:
    """PostgreSQL's user owns the restored cluster and may read the staged WAL (in `build`)."""
    pgdata.chmod(0o700)
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam(SYSTEM_USER)
    for folder in (pgdata, build):
        os.chown(folder, user.pw_uid, user.pw_gid)
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid, follow_symlinks=False)


# What PostgreSQL logs when the WAL ends before the recovery target.
SHORT_OF_TARGET = "before configured recovery target was reached"


def _replay(data_dir: Path, options: dict[str, str], missing: str | None) -> dt.datetime | None:
    """Runs PostgreSQL on the restored folder until it has replayed the WAL and promoted itself;
    returns the commit time of the last transaction it replayed."""
    server = EmbeddedPostgres(data_dir, options=options)

    def short_of_the_target() -> BackupError:
        gap = f"the archived WAL stops at a gap ({missing} is missing)" if missing else "that moment is not in them yet"
        return BackupError(
            f"the backups end before {options.get('recovery_target_time')}: {gap} "
            "(`hatd backup status` says the latest they hold); nothing was restored"
        )

    try:
        server.start()
    except EmbeddedError as exc:
        if SHORT_OF_TARGET in str(exc):
            raise short_of_the_target() from None
        raise BackupError(f"PostgreSQL could not replay the backups: {exc}") from None
    try:
        deadline = time.monotonic() + REPLAY_TIMEOUT
        while asyncio.run(_in_recovery(server.dsn())):
            if time.monotonic() > deadline:
                raise BackupError(f"the WAL replay did not finish within {REPLAY_TIMEOUT} s")
            time.sleep(0.2)
        return asyncio.run(_replayed_until(server.dsn()))
    except (OSError, asyncpg.PostgresError) as exc:
        log_tail = (data_dir / "postgres" / "server.log").read_text()[-2000:]
        # A server that accepts connections while it replays (hot standby) may end short of the
        # target after the start returned: the same refusal as when the start itself fails.
        if SHORT_OF_TARGET in log_tail:
            raise short_of_the_target() from None
        raise BackupError(f"PostgreSQL stopped while replaying the WAL ({exc}):\n{log_tail}") from None
    finally:
        server.stop()


async def _in_recovery(dsn: str) -> bool:
    async with db.connection(dsn, connect_timeout=10) as conn:
        value: bool = await conn.fetchval(Q.in_recovery)
        return value


async def _replayed_until(dsn: str) -> dt.datetime | None:
    async with db.connection(dsn, connect_timeout=10) as conn:
        value: dt.datetime | None = await conn.fetchval(Q.replayed_until)
        return value
