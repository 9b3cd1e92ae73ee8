"""The backup folder and hatd's local backup state.

The folder (HATD_BACKUP_DIR), every file in it sealed (keys.py) but `recipient`, the public key:

    recipient                        age1...: the key the folder is sealed to (public; checked)
    writer                           the instance id of the one data folder that backs up into it
    base/<label>/data.tar.zst.age    one base backup: pg_basebackup's plain output, as a tar
    base/<label>/info.json.age       what it is: full or incremental (and on which), WAL range, times
    wal/<segment>.zst.age            the archived WAL (and timeline .history files)
    exports/<label>.jsonl.zst.age    on another PostgreSQL: `hatd export` files instead

A label is the backup's UTC start time and kind, 20261207T101500Z-full, so names sort in time
order. A backup being written sits in base/<label>.partial/ until verified, then is renamed: a
backup cut short is never taken for one.

Local, in the data folder (as private as the database itself): backup.key, wal-staging/ where
PostgreSQL's archive_command puts each finished WAL file for hatd to seal and ship, backup-work/
(scratch), backup-state.json (what the last runs did, for status, /metrics and the pages),
backup.lock (one backup job at a time, whichever hatd process runs it), wal.lock (one process ships
WAL at a time; apart from the job's lock, so WAL goes on shipping while a job runs) and
backup-state.lock (held for the moment the state is read, changed and written).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import filecmp
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyrage

from hatd.backup import keys
from hatd.backup.keys import BackupError

STAGING = "wal-staging"
WORK = "backup-work"
STATE = "backup-state.json"
LOCK = "backup.lock"
WAL_LOCK = "wal.lock"
STATE_LOCK = "backup-state.lock"
RECIPIENT = "recipient"
# In the folder: the instance id of the data folder that writes into it (one writer at a time).
WRITER = "writer"
# In the data folder: its instance id, made once (a restored copy gets a new one).
INSTANCE = "backup-instance"
SEALED = ".zst.age"
# A WAL segment's name: timeline, then the 16 hex digits of its position.
_SEGMENT = re.compile(r"([0-9A-F]{8})([0-9A-F]{16})(\.partial|\.[0-9A-F]{8}\.backup)?")
_HISTORY = re.compile(r"[0-9A-F]{8}\.history")
_LABEL = re.compile(r"\d{8}T\d{6}Z-(full|incr|export)")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def wal_position(name: str) -> str | None:
    """The position part of a WAL file's name (None for a timeline history file or anything else)."""
    match = _SEGMENT.fullmatch(name)
    return match[2] if match else None


def is_wal_name(name: str) -> bool:
    return _SEGMENT.fullmatch(name) is not None or _HISTORY.fullmatch(name) is not None


def lsn_position(lsn: str) -> str:
    """The WAL file position (as in its name, 16 MB segments) holding an LSN like 0/2000028."""
    high, low = (int(part, 16) for part in lsn.split("/"))
    return f"{high:08X}{low >> 24:08X}"


def segment_index(position: str) -> int:
    """A WAL position (its name's last 16 hex digits) as a count of 16 MB segments: 256 to each 4 GB."""
    return int(position[:8], 16) * 0x100 + int(position[8:], 16)


def segment_name(timeline: int, index: int) -> str:
    return f"{timeline:08X}{index >> 8:08X}{index & 0xFF:08X}"


def start_segment(backup: Backup) -> str:
    """The name of the WAL segment a base backup starts in: replay past its end needs it archived."""
    return segment_name(backup.timeline, segment_index(lsn_position(backup.start_lsn)))


def parse_history(text: str) -> list[tuple[int, int]]:
    """A timeline history file's lines: (an ancestor timeline, the segment index where it ended)."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            found.append((int(fields[0]), segment_index(lsn_position(fields[1]))))
    return found


def first_missing_wal(
    segments: set[tuple[int, int]], histories: dict[int, list[tuple[int, int]]], start: tuple[int, int] | None
) -> str | None:
    """The name of the first WAL segment missing between `start` ((timeline, segment index); None:
    the first segment there is) and the newest segment archived, along the newest timeline and the
    ones it branched from (its history file); None when they run unbroken. Replay stops at a gap, so
    nothing after one can be reached."""
    timelines = {timeline for timeline, _ in segments} | set(histories) | ({start[0]} if start else set())
    if not timelines:
        return None
    latest = max(timelines)
    legs: list[tuple[int, int, int | None]] = []  # (timeline, first segment, last segment or None: open)
    begin = 0
    for parent, switched in histories.get(latest, []):
        # The parent's segment holding the switch point is replaced by the child's copy of it.
        legs.append((parent, begin, switched - 1))
        begin = switched
    legs.append((latest, begin, None))
    if start is not None:
        on = [i for i, leg in enumerate(legs) if leg[0] == start[0]]
        if not on:
            raise BackupError(
                f"the backup is on timeline {start[0]}, which the newest timeline in the archive ({latest}) did not "
                "branch from: the archived WAL cannot take it forward"
            )
        timeline, _, end = legs[on[0]]
        legs = [(timeline, start[1], end), *legs[on[0] + 1 :]]
    held = [
        [i for t, i in segments if t == timeline and i >= first and (end is None or i <= end)]
        for timeline, first, end in legs
    ]
    with_any = [n for n, found in enumerate(held) if found]
    if not with_any:
        return None
    if start is None:
        timeline, _, end = legs[with_any[0]]
        legs = [(timeline, min(held[with_any[0]]), end), *legs[with_any[0] + 1 :]]
        held = held[with_any[0] :]
        with_any = [n - with_any[0] for n in with_any]
    last = with_any[-1]
    for n, (timeline, first, end) in enumerate(legs[: last + 1]):
        upto = max(held[n]) if n == last else end
        assert upto is not None
        for index in range(first, upto + 1):
            if (timeline, index) not in segments:
                return segment_name(timeline, index)
    return None


@dataclass
class Backup:
    """One verified base backup (or export) in the folder, from its info.json."""

    label: str
    kind: str  # full, incr or export
    parent: str | None
    started: str
    finished: str
    timeline: int
    start_lsn: str
    end_lsn: str
    system_identifier: str
    size: int
    hatd_version: str = ""
    verified: str = ""

    @property
    def finished_at(self) -> dt.datetime:
        return parse_time(self.finished)


@dataclass
class State:
    """What this data folder's backups last did (backup-state.json)."""

    last_good: str | None = None  # the label of the last verified backup
    last_good_at: str | None = None
    last_full_at: str | None = None
    manifest_of: str | None = None  # the backup whose manifest is in backup-work/last_manifest
    failure: str | None = None  # the last job's error, until one succeeds
    failed_at: str | None = None
    announced: bool = False  # the failure was logged (said once)
    wal_shipped_at: str | None = None
    wal_last: str | None = None
    wal_error: str | None = None
    oldest_restorable: str | None = None  # the end of the oldest kept backup
    any_moment_from: str | None = None  # the end of the oldest kept backup with the WAL after it
    folder: str | None = None  # the backup folder this data folder set up (never made again after)
    size: int = 0
    count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def chain_of(backup: Backup, backups: list[Backup]) -> list[Backup] | None:
    """The backups to restore `backup` from, full one first; None when one it was taken on is
    missing (or its info.json damaged): then it cannot be restored, nor another taken on it."""
    by_label = {b.label: b for b in backups}
    chain = [backup]
    while chain[0].parent is not None:
        parent = by_label.get(chain[0].parent)
        if parent is None:
            return None
        chain.insert(0, parent)
    return chain


class Store:
    """A data folder's backups: its local state and the backup folder."""

    def __init__(self, data_dir: Path, backup_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.backup_dir = backup_dir.resolve() if backup_dir.exists() else backup_dir.absolute()
        # The folder as set (not resolved: the same whether it is there or not), as the state records it.
        self.given_dir = str(backup_dir.absolute())
        self.staging = self.data_dir / STAGING
        self.work = self.data_dir / WORK

    # -- local state ------------------------------------------------------------------------

    def read_state(self) -> State:
        try:
            raw = json.loads((self.data_dir / STATE).read_text())
        except (OSError, ValueError):
            return State()
        known = State.__dataclass_fields__
        return State(**{k: v for k, v in raw.items() if k in known})

    def write_state(self, state: State) -> None:
        path = self.data_dir / STATE
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(asdict(state), indent=1))
        os.replace(partial, path)

    @contextmanager
    def changing_state(self) -> Iterator[State]:
        """The state to change: written back on leaving, with no other process changing it meanwhile."""
        with self.locked(name=STATE_LOCK):
            state = self.read_state()
            yield state
            self.write_state(state)

    @contextmanager
    def locked(self, wait: bool | float = True, *, name: str = LOCK) -> Iterator[bool]:
        """Held while a job reads or changes the backups (name=WAL_LOCK: while WAL is shipped).
        wait=False yields False at once when another process holds it; a number of seconds, after
        waiting that long for it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / name, "a+") as handle:
            deadline = time.monotonic() + (0 if wait is False or wait is True else float(wait))
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait is True else fcntl.LOCK_NB))
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.05)
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def fresh_work(self, name: str) -> Path:
        folder = self.work / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, mode=0o700)
        self.work.chmod(0o700)
        return folder

    # -- the folder -------------------------------------------------------------------------

    def open_folder(self, recipient: str) -> None:
        """Make the folder (private) or check that it is sealed to this key. Once this data folder
        has set it up, a folder (or its recipient file) gone missing is an error, never made again:
        an unmounted share or a lost disk must not pass for an empty folder."""
        marker = self.backup_dir / RECIPIENT
        set_up = self.read_state().folder == self.given_dir
        if set_up and not marker.is_file():
            what = "is gone" if not self.backup_dir.is_dir() else f"has lost its {RECIPIENT} file"
            raise BackupError(
                f"the backup folder {self.backup_dir} {what} (a share not mounted, a disk lost?): hatd does not "
                "make it again, which would hide that the backups in it are gone. Mount it again; or, to start a "
                f"new backup folder there, make it and put this HAT's public key in it: echo {recipient} > {marker}"
            )
        self.backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for sub in ("base", "wal", "exports"):
            (self.backup_dir / sub).mkdir(exist_ok=True, mode=0o700)
        if marker.exists():
            theirs = marker.read_text().strip()
            if theirs != recipient:
                raise BackupError(
                    f"{self.backup_dir} holds backups sealed to another key ({theirs}), not this HAT's "
                    f"({recipient}, in {keys.key_path(self.data_dir)}): give this HAT a folder of its own "
                    "(HATD_BACKUP_DIR), or put the key those backups were made with in place"
                )
        else:
            marker.write_text(recipient + "\n")
        writer, mine = self.backup_dir / WRITER, self.instance_id()
        if not writer.exists():
            writer.write_text(mine + "\n")
        elif writer.read_text().strip() != mine:
            raise BackupError(
                f"{self.backup_dir} is backed up into by another data folder (instance {writer.read_text().strip()}; "
                f"this one, {self.data_dir}, is {mine}): a restored copy must not take over the original's backups. "
                "Give this HAT a backup folder of its own (HATD_BACKUP_DIR), or, if the original HAT is gone for good, "
                "make this one the folder's writer with `hatd backup adopt`"
            )
        if not set_up:
            with self.changing_state() as state:
                state.folder = self.given_dir

    def instance_id(self) -> str:
        """This data folder's instance id (made on first use)."""
        path = self.data_dir / INSTANCE
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.partial")
            partial.write_text(uuid.uuid4().hex + "\n")
            os.replace(partial, path)
        return path.read_text().strip()

    def adopt(self) -> str:
        """Make this data folder the backup folder's writer (the one it had is gone for good)."""
        mine = self.instance_id()
        partial = self.backup_dir / f".{WRITER}.partial"
        partial.write_text(mine + "\n")
        os.replace(partial, self.backup_dir / WRITER)
        return mine

    def backups(self, identity: pyrage.x25519.Identity, *, kind: str | None = None) -> list[Backup]:
        """The verified backups in the folder, oldest first (those whose info.json does not open are
        left out: see scan)."""
        return self.scan(identity, kind=kind)[0]

    def scan(
        self, identity: pyrage.x25519.Identity, *, kind: str | None = None
    ) -> tuple[list[Backup], list[tuple[str, str]]]:
        """The verified backups in the folder, oldest first, and (label, what is wrong) for each one
        whose info.json is damaged: one such file must not stop every backup, verify and restore."""
        found, broken = [], []
        base = self.backup_dir / ("exports" if kind == "export" else "base")
        if not base.is_dir():
            return [], []
        for folder in sorted(base.iterdir()):
            if not _LABEL.fullmatch(folder.name) or not (folder / "info.json.age").exists():
                continue
            try:
                info = json.loads(keys.decrypt_bytes(folder / "info.json.age", identity))
                found.append(Backup(**{k: v for k, v in info.items() if k in Backup.__dataclass_fields__}))
            except (BackupError, ValueError, TypeError) as exc:
                broken.append((folder.name, str(exc)))
        return sorted(found, key=lambda b: b.finished), broken

    def backup_folder(self, backup: Backup | str) -> Path:
        label = backup if isinstance(backup, str) else backup.label
        return self.backup_dir / ("exports" if label.endswith("-export") else "base") / label

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.backup_dir.rglob("*") if p.is_file())

    def sealed_files(self) -> list[Path]:
        return [p for p in self.backup_dir.rglob("*") if p.is_file() and p.name != RECIPIENT]

    # -- WAL --------------------------------------------------------------------------------

    def pending_wal(self) -> list[Path]:
        """The finished WAL files PostgreSQL archived to the staging folder, oldest first."""
        if not self.staging.is_dir():
            return []
        return sorted(p for p in self.staging.iterdir() if is_wal_name(p.name))

    def ship_wal(self, identity: pyrage.x25519.Identity) -> int:
        """Seal every staged WAL file into the folder, then remove it from staging; the count shipped.
        A file already in the folder is never replaced: the same content (shipped before a crash) is
        only dropped from staging, a different one refused (two HATs writing into one folder).
        The caller holds the WAL lock."""
        shipped = 0
        scratch = self.fresh_work("ship")
        recipient = keys.recipient_of(identity)
        for staged in self.pending_wal():
            target = self.backup_dir / "wal" / (staged.name + SEALED)
            if target.exists():
                keys.open_sealed(target, scratch / "archived", identity, scratch)
                if not filecmp.cmp(staged, scratch / "archived", shallow=False):
                    raise BackupError(
                        f"{target} already holds a different {staged.name}: another HAT writes WAL into "
                        f"{self.backup_dir}? It was not replaced; the new one waits in {self.staging}"
                    )
            else:
                keys.seal(staged, target, recipient, scratch)
            staged.unlink()
            shipped += 1
        return shipped

    def wal_files(self) -> list[Path]:
        folder = self.backup_dir / "wal"
        return sorted(p for p in folder.iterdir() if p.name.endswith(SEALED)) if folder.is_dir() else []

    # -- retention --------------------------------------------------------------------------

    def retain(self, backups: list[Backup], keep_daily: int, keep_weekly: int, today: dt.datetime) -> list[Backup]:
        """Delete the backups the rule does not keep, and the WAL no kept backup needs to reach any
        moment of the daily window; returns the backups kept."""
        if not backups:
            return []
        by_label = {b.label: b for b in backups}
        keep = {backups[-1].label}
        daily: dict[dt.date, Backup] = {}
        weekly: dict[tuple[int, int], Backup] = {}
        for backup in backups:  # oldest first: the newest of each day wins; of each week, the newest
            day = backup.finished_at.date()  # full one (an incremental one would keep its whole chain)
            daily[day] = backup
            week = day.isocalendar()[:2]
            if backup.kind != "incr" or week not in weekly or weekly[week].kind == "incr":
                weekly[week] = backup
        first_day = today.date() - dt.timedelta(days=keep_daily - 1)
        keep |= {b.label for day, b in daily.items() if day >= first_day}
        first_week = today.date() - dt.timedelta(weeks=keep_weekly)
        keep |= {b.label for b in weekly.values() if keep_weekly and b.finished_at.date() > first_week}
        for label in list(keep):  # an incremental backup needs the ones it was taken on
            parent = by_label[label].parent
            while parent is not None and parent in by_label:
                keep.add(parent)
                parent = by_label[parent].parent
        for backup in backups:
            if backup.label not in keep:
                shutil.rmtree(self.backup_folder(backup), ignore_errors=True)
        kept = [b for b in backups if b.label in keep]
        # WAL from the start of the oldest backup of the daily window: any moment since can be reached.
        window = [b for b in kept if b.finished_at.date() >= first_day] or kept[-1:]
        first_needed = min((lsn_position(b.start_lsn) for b in window if b.kind != "export"), default=None)
        if first_needed is not None:
            for path in self.wal_files():
                position = wal_position(path.name.removesuffix(SEALED))
                if position is not None and position < first_needed:
                    path.unlink()
        return kept

    def clear_partial(self) -> None:
        """Backups cut short (their folder still .partial) are removed."""
        for sub in ("base", "exports"):
            folder = self.backup_dir / sub
            if folder.is_dir():
                for left in folder.glob("*.partial"):
                    shutil.rmtree(left, ignore_errors=True)
