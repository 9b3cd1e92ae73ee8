"""The `hatd` command line: serve a HAT, migrate its database, create it, reset a password,
provision more HATs on one PostgreSQL server, export a HAT to a file and import it into a new one,
and import iCalendar, GPX and CSV files into any HAT through its API (`hatd plug`)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import getpass
import logging
import os
import secrets
import shlex
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web

from hatd import db, provision
from hatd.accesslog import AccessLogger, ClientErrorFilter
from hatd.accounts.bootstrap import (
    HatCreationError,
    check_account,
    create_hat,
    hat_address,
    record_served_address,
    set_account_password,
    set_password,
    settings_not_applied,
)
from hatd.accounts.repository import SPECIAL_ROLES
from hatd.app import create_app
from hatd.backup import keys as backup_keys
from hatd.backup import restore as backup_restore
from hatd.backup import service as backups
from hatd.backup.keys import BackupError
from hatd.backup.store import Backup
from hatd.embedded import EmbeddedError, EmbeddedPostgres
from hatd.exports import repository as exports
from hatd.exports.progress import ProgressBar
from hatd.plugs import cli as plug_cli
from hatd.settings import Settings, SettingsError, check_address, issuer_of, load, settings_help

log = logging.getLogger("hatd")

# On the embedded server the first HAT's database belongs to this role, which is not a superuser:
# the app never runs as `postgres`, so no SQL mistake can reach `COPY ... TO PROGRAM` and the like.
# HATs made by `hatd provision NAME` have a role and a database named NAME.
EMBEDDED_DATABASE = "hatd"
EMBEDDED_ROLE = "hatd"
# How often `hatd serve` checks that the embedded server still runs, in seconds.
WATCH_INTERVAL = 2.0
# A server started again that dies (or cannot start) within STABLE_AFTER seconds is started again
# after twice the last wait, up to MAX_RESTART_WAIT: one that cannot stay up is not restarted,
# and logged, every WATCH_INTERVAL.
STABLE_AFTER = 60.0
MAX_RESTART_WAIT = 300.0
# `hatd backup run` runs at this lower CPU priority (nice), so that a backup does not slow requests.
BACKUP_NICENESS = 10


@contextmanager
def server(settings: Settings) -> Iterator[tuple[str, EmbeddedPostgres | None]]:
    """(an admin DSN, the embedded server or None): HATD_DATABASE_URL as it is, or the embedded
    server's superuser, with the server started for the block (stopped after it if no other hatd
    uses it)."""
    if settings.database_url:
        yield settings.database_url, None
        return
    embedded = EmbeddedPostgres(settings.data_dir, options=backups.server_options(settings))
    embedded.start()
    backups.fix_staging_owner(settings)
    try:
        asyncio.run(provision.close_maintenance_databases(embedded.dsn()))
        yield embedded.dsn(), embedded
    finally:
        embedded.stop()


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The DSN of the HAT's database: HATD_DATABASE_URL, or on the embedded server the database
    HATD_EMBEDDED_DATABASE as the role of that name (`hatd`'s made on first use, others by
    `hatd provision`)."""
    with database_and_server(settings) as (dsn, _):
        yield dsn


@contextmanager
def database_and_server(settings: Settings) -> Iterator[tuple[str, EmbeddedPostgres | None]]:
    """database(), with the embedded server (None with HATD_DATABASE_URL)."""
    with server(settings) as (dsn, embedded):
        yield hat_dsn(settings, dsn, embedded), embedded


def hat_dsn(settings: Settings, dsn: str, embedded: EmbeddedPostgres | None, *, serving: bool = False) -> str:
    """The HAT's DSN on the server `server()` gave. On the embedded server the first HAT's address
    is recorded, and refused if another HAT has it; `serving` a provisioned HAT, it must be served
    at the address it was provisioned for (ProvisionError otherwise)."""
    if embedded is None:
        return dsn
    name = settings.embedded_database
    address = issuer_of(_normal_address(settings.address))
    if name == EMBEDDED_DATABASE:
        asyncio.run(provision.ensure_database(dsn, EMBEDDED_DATABASE, EMBEDDED_ROLE))
        # A command from another shell (hatd export, without the server's HATD_PORT) must not take
        # the address from where the HAT is served: a default address (no HATD_HAT_ADDRESS) is
        # recorded over another only by `hatd serve`. A given one is recorded (and refused when
        # another HAT has it) by every command, as before.
        given = serving or bool(settings.hat_address)
        if given or asyncio.run(provision.recorded_address(dsn, EMBEDDED_DATABASE)) is None:
            asyncio.run(provision.record_address(dsn, EMBEDDED_DATABASE, address))
    else:
        state = asyncio.run(provision.hat_state(dsn, name))
        if state is provision.HatState.UNFINISHED:
            raise provision.ProvisionError(
                f"the HAT {name!r} on the embedded server in {settings.data_dir} was left unfinished by a "
                f"provisioning that stopped part-way: finish it with `hatd provision {name} --exist-ok`"
            )
        if state is not provision.HatState.COMPLETE:
            raise provision.ProvisionError(
                f"the embedded server in {settings.data_dir} holds no HAT named {name!r} "
                f"(HATD_EMBEDDED_DATABASE): make it with `hatd provision {name}`"
            )
        if serving:
            _check_recorded_address(dsn, name, address)
    return embedded.dsn(name, user=name)


def _check_recorded_address(dsn: str, name: str, address: str) -> None:
    """A provisioned HAT is served at the address it was provisioned for: its tokens' issuer, which
    apps and plugs hold, and which provisioning refuses to every other HAT of the server."""
    recorded = asyncio.run(provision.recorded_address(dsn, name))
    if recorded is None:  # provisioned before addresses were recorded
        asyncio.run(provision.record_address(dsn, name, address))
    elif recorded != address:
        raise provision.ProvisionError(
            f"the HAT {name!r} was provisioned for the address {recorded}, not {address}: serve it with "
            f"HATD_HAT_ADDRESS set to its address (as `hatd provision` printed it, http:// or https://). "
            "Its tokens name that address as their issuer, and no other HAT of this server may have it."
        )


async def _prepare(dsn: str, settings: Settings, *, serving: bool = False) -> None:
    """Migrate, then create the HAT if this is its first start; `serving`, record where it is
    served, for the commands run from another shell."""
    async with db.connection(dsn) as conn:
        await _prepare_on(conn, settings)
        if serving:
            await record_served_address(conn, settings.address)


async def _prepare_on(conn: asyncpg.Connection, settings: Settings) -> None:
    await db.migrate(conn)
    created = await create_hat(conn, settings)
    if created is None:
        ignored = await settings_not_applied(conn, settings)
        if ignored:
            log.warning(
                "%s: not applied, the HAT exists (these settings are read only when it is created; its "
                "accounts keep the emails and names they were made with). `hatd set-password owner` (or "
                "platform) gives an account a new password.",
                ", ".join(ignored),
            )
        return
    print(f"Created the HAT {settings.address}: owner {settings.owner_email} (userId {created.owner_id})")
    if created.generated_owner_password:
        print(
            "\n  The owner's password (shown only this once; keep it safe):\n\n"
            f"      {created.generated_owner_password}\n\n"
            "  Change it with `hatd set-password owner`.\n",
            flush=True,
        )


def _normal_address(address: str) -> str:
    """An address as `hatd provision` compares it (check_address's form), or as it is if odd."""
    try:
        return check_address(address)
    except SettingsError:
        return address


def _check_address(address: str) -> str:
    try:
        return check_address(address)
    except SettingsError as exc:
        raise provision.ProvisionError(f"--address {exc}") from None


def cmd_provision(settings: Settings, args: argparse.Namespace) -> int:
    name = provision.check_name(args.name)
    if args.address is None and not settings.hat_address:
        raise provision.ProvisionError(
            "give the new HAT its own address with --address URL (or HATD_HAT_ADDRESS): it is the issuer of "
            f"its tokens, and the default, {settings.address}, is the first HAT's"
        )
    address = _check_address(args.address if args.address is not None else settings.hat_address)
    limit = provision.check_connection_limit(args.connection_limit, settings.pool_max_size)
    given = args.role_password_stdin
    role_password = (
        provision.check_role_password(sys.stdin.readline().rstrip("\r\n")) if given else provision.new_role_password()
    )
    hat_settings = settings.replace(hat_address=address)

    async def prepare(conn: asyncpg.Connection, finishing: bool) -> None:
        if finishing:
            print(f"Finishing the HAT {name}, left unfinished by an earlier provisioning.", flush=True)
        await _prepare_on(conn, hat_settings)

    with server(settings) as (admin_dsn, embedded):
        outcome = asyncio.run(
            provision.provision_hat(
                admin_dsn,
                name,
                role_password,
                prepare,
                connection_limit=limit,
                exist_ok=args.exist_ok,
                # Compared as the tokens' issuer: http://x and https://x would sign with one `iss`.
                address=issuer_of(address),
            )
        )
        if outcome is provision.Provisioned.EXISTED:
            print(f"The HAT {name} exists already; nothing was changed.")
            return 0
        if embedded is not None:
            start = {"HATD_DATA_DIR": str(settings.data_dir.resolve()), "HATD_EMBEDDED_DATABASE": name}
        else:
            shown = "ROLE-PASSWORD" if given else role_password
            start = {"HATD_DATABASE_URL": provision.hat_dsn(admin_dsn, name, shown)}
    print(
        f"Its database {name} belongs to its role {name} (at most {limit} connections); no other role may "
        "connect to it.\n"
    )
    port = urlsplit(address).port or settings.port
    start |= {"HATD_HAT_ADDRESS": address, "HATD_PORT": str(port)}
    lines = [f"    {key}={shlex.quote(value)} \\" for key, value in start.items()]
    print("Serve it with (each HAT on one host needs a port of its own):\n", *lines, "    hatd serve", sep="\n")
    if embedded is None and given:
        print("\n  ROLE-PASSWORD: the role password given on standard input.")
    elif embedded is None:
        print("\n  The DSN holds the role's password, shown only this once: keep it safe.")
    return 0


async def keep_running(embedded: EmbeddedPostgres, interval: float = WATCH_INTERVAL) -> None:
    """Every `interval` seconds: start the embedded server again if it died. A failure (the dead
    server's last processes still hold its memory, say) is logged once and tried again. A start
    (or a failed one) within STABLE_AFTER seconds of the last doubles the wait before the next
    check, up to MAX_RESTART_WAIT; the wait is `interval` again once the server has stayed up."""
    failing = False
    wait = interval
    # When it was last started (or tried), and whether a check has found it running since.
    last_start: float | None = None
    seen_up = False
    while True:
        await asyncio.sleep(wait)
        try:
            started = await asyncio.to_thread(embedded.keep_running)
        except EmbeddedError as exc:
            if not failing:
                log.error("embedded PostgreSQL could not be started again; trying again: %s", exc)
            failing = started = True
        else:
            failing = False
        now = time.monotonic()
        if not started:
            seen_up = True
            if last_start is not None and now - last_start >= STABLE_AFTER:
                wait, last_start = interval, None
            continue
        if last_start is not None and (not seen_up or now - last_start < STABLE_AFTER):
            wait = min(wait * 2, MAX_RESTART_WAIT)
            log.warning("embedded PostgreSQL did not stay up; the next start waits %.0f s", wait)
        last_start, seen_up = now, False


def _watch(embedded: EmbeddedPostgres) -> Callable[[web.Application], AsyncIterator[None]]:
    async def watching(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(keep_running(embedded))
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return watching


async def _freeze_heap(app: web.Application) -> None:
    """Moves every object alive once the server is up (modules, routes, schemas, the pool) out of
    the garbage collector's sight: they live as long as the process, and without this each full
    collection walks all of them again. A batch of 1,000 values decodes to thousands of dicts,
    enough to set off collections; on such requests this took about half the CPU the decoding
    and checking cost (Python's docs suggest gc.freeze() for this; nothing is collected later
    than it would have been, only the startup objects are no longer re-examined)."""
    gc.freeze()


def serving_line(settings: Settings) -> str:
    """What `hatd serve` says once it listens, in one line: the HAT's address, where it listens
    when that is another address, and where the owner's pages are."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    listening = f"{host}:{settings.port}"
    where = "" if settings.address == f"http://{listening}" else f" (listening on {listening})"
    return f"hatd serving {settings.address}{where} — your pages: {settings.address}/owner"


def command_name() -> str:
    """How to run this hatd from a shell: `hatd` when that is on the PATH and is this one; else
    its script's path (relative to the current folder when below it), as after `make run`, which
    puts nothing on the PATH."""
    program = Path(sys.argv[0])
    if program.name != "hatd":  # python -m hatd: the script beside this Python, if it has one
        program = Path(sys.executable).parent / "hatd"
        if not program.exists():
            return f"{shlex.quote(sys.executable)} -m hatd"
    found = shutil.which("hatd")
    if found and Path(found).resolve() == program.resolve():
        return "hatd"
    absolute = program.absolute()
    shown = absolute.relative_to(Path.cwd()) if absolute.is_relative_to(Path.cwd()) else absolute
    return shlex.quote(str(shown))


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    with server(settings) as (admin_dsn, embedded):
        dsn = hat_dsn(settings, admin_dsn, embedded, serving=True)
        asyncio.run(_prepare(dsn, settings, serving=True))
        app = create_app(dataclasses.replace(settings, database_url=dsn))
        if embedded is not None:
            app.cleanup_ctx.append(_watch(embedded))
        app.on_startup.append(_freeze_heap)
        if settings.backup_path is not None:  # on another PostgreSQL: only with HATD_BACKUP_DIR set, for exports
            notice = backups.first_start_notice(settings)
            if notice:
                print(notice, flush=True)
            service = backups.BackupService(settings, admin_dsn)
            app[backups.SERVICE] = service
            app.cleanup_ctx.append(backups.serve_context(service))
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=lambda _: print(
                serving_line(settings), f"Other commands: {command_name()} --help", sep="\n", flush=True
            ),
            shutdown_timeout=30,
            access_log_class=AccessLogger,
        )
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def run(dsn: str) -> None:
        async with db.connection(dsn) as conn:
            if args.status:
                applied, pending = await db.migration_status(conn)
                for row in applied:
                    print(f"applied  {row['version']:04d}_{row['name']}  {row['applied_at']:%Y-%m-%d %H:%M:%S%z}")
                for migration in pending:
                    print(f"pending  {migration.version:04d}_{migration.name}")
            else:
                done = await db.migrate(conn)
                print(f"applied {len(done)} migration(s)" if done else "the database is up to date")

    with database(settings) as dsn:
        asyncio.run(run(dsn))
    return 0


def cmd_create_owner(settings: Settings, args: argparse.Namespace) -> int:
    with database(settings) as dsn:
        asyncio.run(_prepare(dsn, settings))
    return 0


def cmd_set_password(settings: Settings, args: argparse.Namespace) -> int:
    account: str = args.account
    special = account in SPECIAL_ROLES

    async def check(dsn: str) -> None:
        async with db.connection(dsn) as conn:
            await check_account(conn, account)

    async def run(dsn: str, password: str) -> str:
        async with db.connection(dsn) as conn:
            if special:
                user_id = await set_password(conn, account, password, settings.bcrypt_rounds)
                return f"Set the password of the {account} account ({user_id})."
            done = await set_account_password(conn, account, password, settings.bcrypt_rounds)
        said = f"Set the password of the {done.role} account {account} ({done.user_id})."
        if not done.enabled:
            said += "\nIt is disabled: it cannot log in until the owner enables it (Accounts, /owner/accounts)."
        return said

    with database(settings) as dsn:
        # A name nobody has is refused before a password is asked for (or made up and shown).
        asyncio.run(check(dsn))
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            generated = False
        elif sys.stdin.isatty():
            password = getpass.getpass(f"New password for the {account} account: ")
            generated = False
        else:
            password, generated = secrets.token_urlsafe(18), True
        if not password:
            raise HatCreationError("the password must not be empty")
        print(asyncio.run(run(dsn, password)))
    if generated:
        print(f"\n  The new password (shown only this once):\n\n      {password}\n")
    return 0


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    bar = ProgressBar("export")

    address = settings.address

    async def run(dsn: str, out: BinaryIO) -> int:
        nonlocal address
        async with db.connection(dsn) as conn:
            address = await hat_address(conn, settings)

            async def write(chunk: bytes) -> None:
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise exports.ExportError(f"cannot write {args.file}: {exc.strerror or exc}") from None

            return await exports.export_hat(conn, address, write, bar)

    with database(settings) as dsn:
        if args.file == "-":
            asyncio.run(run(dsn, sys.stdout.buffer))
            sys.stdout.buffer.flush()
            bar.finish()
            return 0
        # Written beside the target and renamed into place at the end: an export that fails
        # halfway leaves no file that looks whole. The owner's data: readable by its owner only
        # whatever the umask, and made new, never through a file or link someone put there first.
        target = Path(args.file)
        partial = target.with_name(f".{target.name}.partial")
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            raise exports.ExportError(
                f"cannot write {args.file}: {partial} exists (another export under way, or one cut short): "
                "remove it first"
            ) from None
        except OSError as exc:
            raise exports.ExportError(f"cannot write {args.file}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "wb") as out:
                rows = asyncio.run(run(dsn, out))
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    bar.finish()
    print(f"Exported {rows:,} rows of the HAT {address} to {args.file}.")
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    bar = ProgressBar("import")

    async def run(dsn: str, source: BinaryIO) -> exports.Header:
        async with db.connection(dsn) as conn:
            return await exports.import_hat(conn, source, bar)

    with database(settings) as dsn:
        if args.file == "-":
            header = asyncio.run(run(dsn, sys.stdin.buffer))
        else:
            try:
                source = Path(args.file).open("rb")  # noqa: SIM115 (closed below, after the run)
            except OSError as exc:
                raise exports.ExportError(f"cannot read {args.file}: {exc.strerror or exc}") from None
            with source:
                header = asyncio.run(run(dsn, source))
    bar.finish()
    print(
        f"Imported {header.rows:,} rows from {args.file} (a copy of the HAT {header.hat}).\n"
        "The owner and platform accounts keep this HAT's passwords; other accounts have no password now."
    )
    return 0


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "key":
        if settings.backup_path is None:
            raise BackupError('backups are off (HATD_BACKUP_DIR is "off", or HATD_DATABASE_URL is set without one)')
        path, made = backup_keys.ensure_key(settings.data_dir)
        identity = backup_keys.load_identity(path)
        print(f"The backup key is in {path.resolve()}{' (made now)' if made else ''}:\n")
        print(f"    {identity}\n")
        print(f"Its public half: {backup_keys.recipient_of(identity)}")
        print("Keep a copy somewhere other than this disk: without it the backups cannot be read.")
        return 0
    if args.action == "status":
        print("\n".join(backups.status(settings).lines()))
        return 0
    if args.action == "open":
        if len(args.paths) != 2:
            raise BackupError("usage: hatd backup open SEALED-FILE OUT-FILE")
        sealed, out = map(Path, args.paths)
        if out.resolve() == sealed.resolve():
            raise BackupError(f"{out} is the sealed file itself: give another OUT-FILE (it would be overwritten)")
        folder = settings.backup_path
        if folder is not None and out.resolve().is_relative_to(folder.resolve()):
            raise BackupError(
                f"{out} is inside the backup folder {folder}: nothing readable goes there, open it elsewhere"
            )
        identity = backup_keys.load_identity(backup_keys.key_path(settings.data_dir))
        backup_keys.open_sealed(sealed, out, identity, out.parent)
        print(f"Opened {sealed} into {out}.")
        return 0
    if args.paths:
        raise BackupError(f"hatd backup {args.action} takes no file names")
    if args.action == "adopt":
        store = backups.store_for(settings)
        if not (store.backup_dir / "recipient").exists():
            raise BackupError(f"{store.backup_dir} is not a hatd backup folder (it has no recipient file)")
        print(f"{store.data_dir} (instance {store.adopt()}) now backs up into {store.backup_dir}.")
        return 0
    if args.action == "verify":
        found = backups.verify_all(settings, print)
        print(f"All {found} backup(s) and the archived WAL open and verify.")
        return 0
    # Backups are background work: requests (hatd serve, PostgreSQL's backends) go first. The
    # children (pg_basebackup, pg_verifybackup) inherit it.
    os.nice(BACKUP_NICENESS)
    taken: Backup | None
    if settings.database_url:
        taken = backups.export_now(settings)
    else:
        with server(settings) as (_, embedded):
            assert embedded is not None
            taken = backups.backup_now(settings, embedded, full=args.full, scheduled=args.scheduled)
    if taken is None:
        print("no backup due: another hatd process took it")
        return 0
    print(f"backup {taken.label} taken and verified ({taken.size:,} bytes sealed)")
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    target = backup_restore.parse_target(args.to)
    key = Path(args.key) if args.key else backup_keys.key_path(settings.data_dir)
    if not key.exists():
        raise BackupError(f"no backup key at {key}: give the one the backups were made with, --key FILE")
    done = backup_restore.restore(settings, Path(args.backup_dir), key, target, lambda line: print(line, flush=True))
    asked = done.target.isoformat() if done.target else "the latest moment the backups hold"
    reached = (
        f"the last transaction replayed committed at {done.reached.isoformat()}"
        if done.reached
        else f"no transaction after the backup's end ({done.chain[-1].finished}) was replayed"
    )
    print(
        f"Restored {done.data_dir} to {asked}, from {' + '.join(b.label for b in done.chain)}: {reached}.\n"
        f"Serve it with:\n\n    HATD_DATA_DIR={shlex.quote(str(done.data_dir))} hatd serve\n\n"
        f"To back it up into {args.backup_dir} in place of the old HAT (gone for good), run `hatd backup adopt` "
        "with the same HATD_DATA_DIR and HATD_BACKUP_DIR first."
    )
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="hatd",
        description="hatd: a HAT personal data server. One process serves one HAT (one owner, one database).",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run the HAT's HTTP API (migrates and creates the HAT first if needed)",
        description="Start the HTTP server. Without HATD_DATABASE_URL it starts the embedded PostgreSQL "
        "under HATD_DATA_DIR and stops it on exit. On the first start it applies the migrations and creates "
        "the owner and platform accounts and the signing key.",
    )
    serve.set_defaults(run=cmd_serve)
    migrate = sub.add_parser(
        "migrate",
        help="apply pending database migrations",
        description="Apply the migrations in sql/schema that the database lacks, each in its own transaction, "
        "then the function files in sql/functions that changed.",
    )
    migrate.add_argument("--status", action="store_true", help="only list applied and pending migrations")
    migrate.set_defaults(run=cmd_migrate)
    create = sub.add_parser(
        "create-owner",
        help="create the HAT: owner and platform accounts, signing key (once)",
        description="Migrate, then create the owner account (HATD_OWNER_*), the platform account "
        "(HATD_PLATFORM_*) and the RSA signing key. Does nothing if the HAT exists. With no "
        "HATD_OWNER_PASSWORD a password is generated and printed once.",
    )
    create.set_defaults(run=cmd_create_owner)
    reset = sub.add_parser(
        "set-password",
        help="set an account's password: the owner's, the platform's, or an app's",
        description="Give ACCOUNT a new password: typed at a prompt, read from standard input with "
        "--password-stdin, or generated and printed once when there is no terminal. ACCOUNT is owner, "
        "platform, or any account's email (in any case) or name, as it logs in with: apps' dataDebit and "
        "dataCredit accounts restored by `hatd import` have no password until given one so. Ends the "
        "account's browser sessions. An ACCOUNT that names no account is refused, changing nothing.",
    )
    reset.add_argument("account", metavar="ACCOUNT", help="owner, platform, or an account's email or name")
    reset.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    reset.set_defaults(run=cmd_set_password)
    new = sub.add_parser(
        "provision",
        help="create a new HAT on a PostgreSQL server shared by many HATs",
        description="Create the HAT NAME on the server of HATD_DATABASE_URL (an admin DSN: a superuser, or a "
        "role with CREATEROLE and CREATEDB), or on the embedded server: a role NAME (NOLOGIN for now, no "
        "other power) owning a UTF8 database NAME that no other role may connect to; then migrate it and "
        "create its owner and platform accounts (HATD_OWNER_*, HATD_PLATFORM_*) and signing key, as "
        "create-owner does; last, let the role log in, with a generated password and a connection limit. "
        "Until then the HAT's own `hatd serve` cannot connect. Prints the settings that serve it. Refuses, "
        "changing nothing, a NAME that is taken.",
    )
    new.add_argument("name", metavar="NAME", help="1 to 32 lowercase letters, digits, underscores; a letter first")
    new.add_argument(
        "--address",
        metavar="URL",
        help="the HAT's public address, its tokens' issuer (default: HATD_HAT_ADDRESS; one of the two is required)",
    )
    new.add_argument(
        "--role-password-stdin",
        action="store_true",
        help="read the role's password from standard input instead of generating one: 16 to 200 of "
        "A-Z a-z 0-9 . _ ~ - (it goes into DSNs unescaped)",
    )
    new.add_argument(
        "--connection-limit",
        metavar="N",
        default=str(provision.DEFAULT_CONNECTION_LIMIT),
        help="the most connections the HAT's role may hold at once, so that one HAT cannot starve the others; "
        f"more than HATD_POOL_MAX_SIZE (default {provision.DEFAULT_CONNECTION_LIMIT})",
    )
    new.add_argument(
        "--exist-ok",
        action="store_true",
        help="exit 0, changing nothing, when the HAT NAME exists whole; finish it when an earlier provisioning "
        "stopped part-way (for provisioning jobs that rerun)",
    )
    new.set_defaults(run=cmd_provision)
    export = sub.add_parser(
        "export",
        help="write the whole HAT to one JSON Lines file (no password hashes, no signing key)",
        description="Write every row of the HAT (accounts without their password hashes, raw data, context, "
        "bundles, data debits and their logs; never the signing key) to FILE, one JSON object per line, from "
        "one consistent snapshot, in flat memory. docs/export.md describes the format. A progress bar goes to "
        "standard error when it is a terminal.",
    )
    export.add_argument("file", metavar="FILE", help="where to write the export; - for standard output")
    export.set_defaults(run=cmd_export)
    restore = sub.add_parser(
        "import",
        help="restore an export into a new, empty HAT (same ids), all or nothing",
        description="Read FILE (made by `hatd export` or GET /export) into this HAT, which must be new: "
        "created (`hatd create-owner`) and holding nothing but its owner, platform and the default "
        "vocabulary. The file's accounts replace those; the owner and platform keep this HAT's passwords, other "
        "accounts have none until given one. This HAT keeps its own signing key, so the old HAT's tokens do not "
        "work here. One transaction: a bad line is named and nothing changes.",
    )
    restore.add_argument("file", metavar="FILE", help="the export to read; - for standard input")
    restore.set_defaults(run=cmd_import)
    plug_cli.add_parser(sub)
    backup = sub.add_parser(
        "backup",
        help="the HAT's backups: run one now, show their status, show the key, verify them",
        description="Backups (docs/backup.md) run by themselves under `hatd serve`: continuous WAL archiving and "
        "full and incremental base backups of the embedded PostgreSQL, encrypted to the key in HATD_DATA_DIR/"
        "backup.key, into HATD_BACKUP_DIR. run: take one now (full with --full; on another PostgreSQL, an encrypted "
        "export). status: the last good backup, the oldest and latest moments they restore to, their size, the last "
        "failure. key: print the key (keep a copy elsewhere). verify: open and check every backup and WAL file. "
        "open SEALED OUT: decrypt one file of the folder (an export, to give to `hatd import`). adopt: make this "
        "data folder the one that backs up into the folder (a restored HAT taking over from one gone for good).",
    )
    backup.add_argument("action", choices=("run", "status", "key", "verify", "open", "adopt"), help="what to do")
    backup.add_argument(
        "paths", nargs="*", metavar="FILE", help="open: a sealed file of the folder, and where to write it"
    )
    backup.add_argument("--full", action="store_true", help="run: a full backup, not an incremental one")
    backup.add_argument("--scheduled", action="store_true", help=argparse.SUPPRESS)
    backup.set_defaults(run=cmd_backup)
    back = sub.add_parser(
        "restore",
        help="make a new data folder (HATD_DATA_DIR) from the backups, to the latest moment or a given time",
        description="Restore the backups in BACKUP_DIR into HATD_DATA_DIR, which must hold no HAT (hatd restore "
        "never writes over one), to the latest moment they hold or to --to TIME (ISO 8601; no zone: UTC): every "
        "transaction committed by then and none after. Each backup used is verified first. Then serve it with "
        "`hatd serve`. The key is HATD_DATA_DIR/backup.key unless --key names another; it becomes the new HAT's.",
    )
    back.add_argument("backup_dir", metavar="BACKUP_DIR", help="the backup folder (HATD_BACKUP_DIR of the old HAT)")
    back.add_argument("--to", default="latest", metavar="TIME", help="latest (default), or a time: 2026-12-07T10:15Z")
    back.add_argument("--key", metavar="FILE", help="the backup key file (default: HATD_DATA_DIR/backup.key)")
    back.set_defaults(run=cmd_restore)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "plug":  # a client of some HAT: this machine's HATD_* settings are not its business
        result: int = args.run(None, args)
        return result
    try:
        settings = load()
    except SettingsError as exc:
        print(f"hatd: bad settings: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # The access log's lines are whole JSON objects: written as they are.
    access = logging.getLogger("aiohttp.access")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.propagate = False
    logging.getLogger("aiohttp.server").addFilter(ClientErrorFilter())
    try:
        outcome: int = args.run(settings, args)
        return outcome
    except exports.ImportRefused as exc:
        print(f"hatd: import refused, nothing was changed: {exc}", file=sys.stderr)
        return 1
    except BackupError as exc:
        print(f"hatd: {exc}", file=sys.stderr)
        return 1
    except (EmbeddedError, HatCreationError, db.MigrationError, provision.ProvisionError, exports.ExportError) as exc:
        print(f"hatd: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"hatd: cannot use the database: {exc}", file=sys.stderr)
        return 1
