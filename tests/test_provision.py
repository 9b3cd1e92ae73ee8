"""`hatd provision NAME` as a real process against the suite's PostgreSQL: what it creates (a role
with no powers owning a database nobody else may connect to, the HAT inside), what it refuses
(changing nothing), and three provisioned HATs served by three `hatd serve` processes that cannot
see into one another."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest

from hatd import provision
from hatd.db import available_migrations
from hatd.embedded import EmbeddedPostgres
from tests import pg
from tests.test_cli import REPO, Server, free_port, hatd, hatd_env, password_matches

NewName = Callable[[], str]


@pytest.fixture
def new_name(admin_dsn: str) -> Iterator[NewName]:
    """new_name(): a HAT name no other test uses; its role and database are dropped after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(f"hat_{uuid.uuid4().hex[:12]}")
        return made[-1]

    try:
        yield make
    finally:
        for name in made:
            asyncio.run(provision.drop_role_and_database(admin_dsn, name))


async def _query(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(_query(dsn, sql, *args))


def server_state(admin_dsn: str, name: str) -> tuple[Any, ...]:
    """Everything provisioning may touch for `name`: its role's row and its database's."""
    role = query(admin_dsn, "SELECT * FROM pg_authid WHERE rolname = $1", name)
    database = query(admin_dsn, "SELECT oid, datname, datdba, datacl FROM pg_database WHERE datname = $1", name)
    return tuple(tuple(row.items()) for row in role + database)


def start_settings(stdout: str) -> dict[str, str]:
    """The settings `hatd provision` printed to serve the HAT: `    HATD_X=value \\` lines."""
    found = re.findall(r"^    (HATD_[A-Z_]+)=(.+) \\$", stdout, re.MULTILINE)
    return {key: shlex.split(value)[0] for key, value in found}


def provisioned(tmp_path: Path, admin_dsn: str, name: str, *args: str, **settings: str) -> dict[str, str]:
    """Runs `hatd provision name *args` on the suite's server; returns the printed start settings.
    Each HAT gets an address of its own (http://NAME.hats.test) unless the test gives one."""
    if "--address" not in args and "hat_address" not in settings:
        args = (*args, "--address", f"http://{name.replace('_', '-')}.hats.test")
    result = hatd("provision", name, *args, env=hatd_env(tmp_path, database_url=admin_dsn, **settings))
    assert result.returncode == 0, result.stderr
    return start_settings(result.stdout)


def test_provision_makes_a_role_with_no_powers_owning_a_closed_database_holding_the_hat(
    tmp_path: Path, admin_dsn: str, new_name: NewName
) -> None:
    name = new_name()
    env = hatd_env(tmp_path, database_url=admin_dsn, owner_password="alice-owner-password")

    result = hatd("provision", name, "--address", "https://alice.hats.test/", env=env)

    assert result.returncode == 0, result.stderr
    start = start_settings(result.stdout)
    assert list(start) == ["HATD_DATABASE_URL", "HATD_HAT_ADDRESS", "HATD_PORT"]
    assert start["HATD_HAT_ADDRESS"] == "https://alice.hats.test"
    assert start["HATD_PORT"] == "8080"
    assert result.stdout.startswith("Created the HAT https://alice.hats.test: owner owner@cli.test (userId ")
    assert "shown only this once" in result.stdout
    hat_dsn = start["HATD_DATABASE_URL"]
    assert hat_dsn == provision.hat_dsn(admin_dsn, name, re.split("[:@]", hat_dsn.split("//")[1])[1])
    role_password = re.split("[:@]", hat_dsn.split("//")[1])[1]
    assert len(role_password) >= 40
    assert role_password not in result.stderr

    [role] = query(admin_dsn, "SELECT * FROM pg_authid WHERE rolname = $1", name)
    assert role["rolcanlogin"] is True
    powers = ("rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication", "rolbypassrls")
    assert [role[power] for power in powers] == [False] * 5
    assert role["rolpassword"].startswith("SCRAM-SHA-256$4096:")
    # One HAT cannot take every connection the server has (the default is above the default pool).
    assert role["rolconnlimit"] == provision.DEFAULT_CONNECTION_LIMIT == 20
    [database] = query(
        admin_dsn,
        "SELECT pg_get_userbyid(datdba) AS owner, datacl::text[] AS acl,"
        " pg_encoding_to_char(encoding) AS encoding FROM pg_database WHERE datname = $1",
        name,
    )
    assert database["owner"] == name
    assert database["encoding"] == "UTF8"
    # PUBLIC (an empty grantee) keeps no CONNECT (c) and no TEMPORARY (T); the owner keeps all.
    assert sorted(database["acl"]) == sorted([f"{name}=CTc/{name}"])

    # The HAT inside belongs to the role: the app, connected as it, owns its tables.
    [owner] = query(hat_dsn, "SELECT pass_hash, email FROM accounts WHERE role = 'owner'")
    assert owner["email"] == "owner@cli.test"
    assert password_matches("alice-owner-password", owner["pass_hash"])
    assert query(hat_dsn, "SELECT count(*) FROM accounts WHERE role = 'platform'")[0][0] == 1
    assert query(hat_dsn, "SELECT count(*) FROM signing_keys")[0][0] == 1
    owners = query(hat_dsn, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
    assert [row["tableowner"] for row in owners] == [name]


def test_a_hats_role_cannot_connect_to_another_hats_database(tmp_path: Path, admin_dsn: str, new_name: NewName) -> None:
    first, second = new_name(), new_name()
    first_dsn = provisioned(tmp_path, admin_dsn, first)["HATD_DATABASE_URL"]
    provisioned(tmp_path, admin_dsn, second)

    assert query(first_dsn, "SELECT current_user, current_database()")[0][:] == (first, first)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match=f'permission denied for database "{second}"'):
        query(pg.with_database(first_dsn, second), "SELECT 1")


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("Alice", "is not a valid HAT name"),
        ("9lives", "is not a valid HAT name"),
        ("al-ice", "is not a valid HAT name"),
        ('a"; DROP DATABASE postgres; --', "is not a valid HAT name"),
        ("a" * 33, "is not a valid HAT name"),
        ("", "is not a valid HAT name"),
        ("pg_signal", "is reserved by PostgreSQL"),
        ("template1", "is reserved by PostgreSQL"),
    ],
)
def test_a_bad_name_is_refused_before_anything_is_touched(
    tmp_path: Path, admin_dsn: str, name: str, complaint: str
) -> None:
    roles_before = query(admin_dsn, "SELECT rolname FROM pg_roles ORDER BY 1")
    databases_before = query(admin_dsn, "SELECT datname FROM pg_database ORDER BY 1")

    result = hatd("provision", name, env=hatd_env(tmp_path, database_url=admin_dsn))

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(f"hatd: {name!r} {complaint}")
    assert query(admin_dsn, "SELECT rolname FROM pg_roles ORDER BY 1") == roles_before
    assert query(admin_dsn, "SELECT datname FROM pg_database ORDER BY 1") == databases_before


def test_a_taken_name_is_refused_and_the_hat_left_as_it_was(tmp_path: Path, admin_dsn: str, new_name: NewName) -> None:
    name = new_name()
    hat_dsn = provisioned(tmp_path, admin_dsn, name)["HATD_DATABASE_URL"]
    before = server_state(admin_dsn, name)
    accounts_before = query(hat_dsn, "SELECT * FROM accounts ORDER BY role")

    again = hatd("provision", name, env=hatd_env(tmp_path, database_url=admin_dsn, owner_password="another"))

    assert (again.returncode, again.stdout) == (1, "")
    assert f"hatd: a role and a database named {name!r} already exist on the server" in again.stderr
    assert "Nothing was changed." in again.stderr
    assert server_state(admin_dsn, name) == before
    assert query(hat_dsn, "SELECT * FROM accounts ORDER BY role") == accounts_before

    rerun = hatd("provision", name, "--exist-ok", env=hatd_env(tmp_path, database_url=admin_dsn))

    assert (rerun.returncode, rerun.stdout) == (0, f"The HAT {name} exists already; nothing was changed.\n")
    assert server_state(admin_dsn, name) == before


def test_an_address_another_hat_has_is_refused(tmp_path: Path, admin_dsn: str, new_name: NewName) -> None:
    """Two HATs at one address would sign tokens with the same `iss`."""
    first, second = new_name(), new_name()
    provisioned(tmp_path, admin_dsn, first, "--address", "https://alice.hats.example")

    # Another spelling of it, or another scheme: the same `iss` (the address without its scheme).
    again = hatd("provision", second, "--address", "HTTPS://Alice.hats.example:443/",
                 env=hatd_env(tmp_path, database_url=admin_dsn))  # fmt: skip
    plain = hatd("provision", second, "--address", "http://alice.hats.example",
                 env=hatd_env(tmp_path, database_url=admin_dsn))  # fmt: skip
    assert (plain.returncode, plain.stderr) == (again.returncode, again.stderr)

    assert (again.returncode, again.stdout) == (1, "")
    assert (
        f"hatd: the HAT {first!r} on this server already has the address alice.hats.example: two HATs "
        "would sign tokens with the same issuer. Give this one another --address. Nothing was changed.\n"
    ) == again.stderr
    assert server_state(admin_dsn, second) == ()
    provisioned(tmp_path, admin_dsn, second, "--address", "https://bob.hats.example")


def test_a_name_taken_by_a_role_alone_is_refused_even_with_exist_ok(
    tmp_path: Path, admin_dsn: str, new_name: NewName
) -> None:
    name = new_name()
    query(admin_dsn, f'CREATE ROLE "{name}"')
    before = server_state(admin_dsn, name)

    result = hatd("provision", name, "--exist-ok", env=hatd_env(tmp_path, database_url=admin_dsn))

    assert (result.returncode, result.stdout) == (1, "")
    assert f"hatd: a role named {name!r} already exists on the server" in result.stderr
    assert server_state(admin_dsn, name) == before


@pytest.fixture
def limited_admin(admin_dsn: str) -> Iterator[Callable[[str], str]]:
    """limited_admin(powers): the DSN of a new login role with those role attributes (dropped after)."""
    made: list[str] = []

    def make(powers: str) -> str:
        made.append(f"admin_{uuid.uuid4().hex[:12]}")
        query(admin_dsn, f'CREATE ROLE "{made[-1]}" LOGIN {powers}')
        host = admin_dsn.split("@", 1)[1]
        return f"postgresql://{made[-1]}@{host}"

    try:
        yield make
    finally:
        for role in made:
            query(admin_dsn, f'DROP ROLE IF EXISTS "{role}"')


def test_an_admin_dsn_that_cannot_create_roles_is_refused_saying_so(
    tmp_path: Path, admin_dsn: str, new_name: NewName, limited_admin: Callable[[str], str]
) -> None:
    name = new_name()
    weak = limited_admin("CREATEDB")

    result = hatd("provision", name, env=hatd_env(tmp_path, database_url=weak))

    assert (result.returncode, result.stdout) == (1, "")
    assert (
        "cannot create roles and databases: provisioning needs a superuser or a role with CREATEROLE and CREATEDB"
        in (result.stderr)
    )
    assert server_state(admin_dsn, name) == ()


def test_a_createrole_createdb_admin_as_on_a_managed_server_provisions(
    tmp_path: Path, admin_dsn: str, new_name: NewName, limited_admin: Callable[[str], str]
) -> None:
    name = new_name()
    manager = limited_admin("CREATEROLE CREATEDB")

    hat_dsn = provisioned(tmp_path, manager, name)["HATD_DATABASE_URL"]

    assert query(hat_dsn, "SELECT current_user, count(*) FROM accounts GROUP BY 1")[0][:] == (name, 2)
    [database] = query(admin_dsn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", name)
    assert database[0] == name


def test_a_role_password_from_stdin_is_stored_as_a_scram_verifier_and_never_printed(
    tmp_path: Path, admin_dsn: str, new_name: NewName
) -> None:
    name = new_name()
    password = "Given-role-password-0123456789"
    env = hatd_env(tmp_path, database_url=admin_dsn)

    result = hatd("provision", name, "--role-password-stdin", env=env, stdin=password + "\n")

    assert result.returncode == 0, result.stderr
    assert password not in result.stdout + result.stderr
    assert start_settings(result.stdout)["HATD_DATABASE_URL"] == provision.hat_dsn(admin_dsn, name, "ROLE-PASSWORD")
    assert "ROLE-PASSWORD: the role password given on standard input." in result.stdout
    [stored] = query(admin_dsn, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", name)
    iterations, salt = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$.*", stored[0]).groups()  # type: ignore[union-attr]
    assert provision.scram_verifier(password, salt=base64.b64decode(salt), iterations=int(iterations)) == stored[0]
    assert provision.scram_verifier(password + "x", salt=base64.b64decode(salt)) != stored[0]


@pytest.mark.parametrize(
    ("limit", "complaint"),
    [
        ("10", "--connection-limit 10 leaves no room: a HAT's pool alone opens up to HATD_POOL_MAX_SIZE (10)"),
        ("0", "--connection-limit 0 leaves no room"),
        ("-1", "--connection-limit -1 leaves no room"),
        ("10001", "--connection-limit 10001 is more than 10000"),
        ("many", "--connection-limit 'many' is not a whole number"),
    ],
)
def test_a_bad_connection_limit_is_refused(
    tmp_path: Path, admin_dsn: str, new_name: NewName, limit: str, complaint: str
) -> None:
    name = new_name()

    result = hatd("provision", name, f"--connection-limit={limit}", env=hatd_env(tmp_path, database_url=admin_dsn))

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(f"hatd: {complaint}"), result.stderr
    assert server_state(admin_dsn, name) == ()


@pytest.mark.parametrize(
    "password",
    [
        "short",
        "has/a/slash-0123456789",
        "has@an-at-sign-0123456789",
        "has#a-hash-0123456789",
        "has%25-a-percent-0123456789",
        "has?a-question-0123456789",
        "has:a-colon-0123456789",
        "has a space 0123456789",
        "non-ascii-é-0123456789",
        "x" * 201,
    ],
)
def test_a_role_password_that_is_short_or_not_url_safe_is_refused(
    tmp_path: Path, admin_dsn: str, new_name: NewName, password: str
) -> None:
    """Role passwords go into DSNs, which the deployment files build by pasting them in unescaped."""
    name = new_name()
    env = hatd_env(tmp_path, database_url=admin_dsn)

    result = hatd("provision", name, "--role-password-stdin", env=env, stdin=password + "\n")

    assert (result.returncode, result.stdout) == (1, "")
    assert "hatd: the role password must be 16 to 200 characters among A-Z a-z 0-9 . _ ~ -" in result.stderr
    assert password not in result.stderr
    assert server_state(admin_dsn, name) == ()


def test_every_url_safe_role_password_makes_a_dsn_that_logs_in(
    tmp_path: Path, admin_dsn: str, new_name: NewName
) -> None:
    name, password = new_name(), "Az09._~-" * 3
    env = hatd_env(tmp_path, database_url=admin_dsn)

    result = hatd("provision", name, "--role-password-stdin", env=env, stdin=password + "\n")

    assert result.returncode == 0, result.stderr
    # As the deployment files build it: the password pasted in as it is.
    pasted = start_settings(result.stdout)["HATD_DATABASE_URL"].replace("ROLE-PASSWORD", password)
    assert query(pasted, "SELECT current_user")[0][0] == name


async def test_the_scram_verifier_is_the_one_postgresql_computes(admin_dsn: str) -> None:
    role = f"scram_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute("SET password_encryption = 'scram-sha-256'")
        await conn.execute(f"CREATE ROLE \"{role}\" PASSWORD 'correct horse battery staple'")
        stored = await conn.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
    finally:
        await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        await conn.close()
    iterations, salt = stored.split("$")[1].split(":")

    assert (
        provision.scram_verifier(
            "correct horse battery staple", salt=base64.b64decode(salt), iterations=int(iterations)
        )
        == stored
    )


def test_a_hat_that_cannot_be_finished_is_undone(tmp_path: Path, admin_dsn: str, new_name: NewName) -> None:
    name = new_name()
    # bcrypt takes at most 72 bytes: creating the owner fails after the role and database exist.
    env = hatd_env(tmp_path, database_url=admin_dsn, owner_password="x" * 73)

    result = hatd("provision", name, env=env)

    assert (result.returncode, result.stdout) == (1, "")
    assert "HATD_OWNER_PASSWORD is longer than 72 bytes" in result.stderr
    assert server_state(admin_dsn, name) == ()


def test_a_bad_address_is_refused(tmp_path: Path, admin_dsn: str, new_name: NewName) -> None:
    name = new_name()

    result = hatd("provision", name, "--address", "alice.example", env=hatd_env(tmp_path, database_url=admin_dsn))

    assert (result.returncode, result.stdout) == (1, "")
    assert "hatd: --address 'alice.example' is not a HAT address" in result.stderr
    assert server_state(admin_dsn, name) == ()


def test_a_hat_without_an_address_of_its_own_is_refused(tmp_path: Path, admin_dsn: str, new_name: NewName) -> None:
    name = new_name()
    env = hatd_env(tmp_path, database_url=admin_dsn)
    env.pop("HATD_HAT_ADDRESS", None)

    result = hatd("provision", name, env=env)

    assert (result.returncode, result.stdout) == (1, "")
    assert "give the new HAT its own address with --address URL" in result.stderr
    assert server_state(admin_dsn, name) == ()


def can_log_in(dsn: str) -> bool:
    """Whether the DSN's role may log in (what a HAT's pod tries until it succeeds)."""
    try:
        query(dsn, "SELECT 1")
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        assert "not permitted to log in" in str(exc)
        return False
    return True


def wait_for(admin_dsn: str, sql: str, *args: Any, timeout: float = 30) -> None:
    """Until the query (on the admin DSN) returns true; a database that does not exist yet is false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(asyncpg.InvalidCatalogNameError, asyncpg.UndefinedTableError):
            if query(admin_dsn, sql, *args)[0][0]:
                return
        time.sleep(0.02)
    pytest.fail(f"not true within {timeout} s: {sql}")


def test_a_provisioning_killed_part_way_leaves_a_role_that_cannot_log_in_and_exist_ok_finishes_it(
    tmp_path: Path, admin_dsn: str, new_name: NewName
) -> None:
    name, password = new_name(), "Role-password-0123456789"
    hat_dsn = provision.hat_dsn(admin_dsn, name, password)
    # A slow owner hash: the provisioning is known to be past the migrations and before the HAT is
    # made when it is killed, the window in which a pod holding the role's password would start.
    env = hatd_env(tmp_path, database_url=admin_dsn, owner_password="the-configured-one", bcrypt_rounds="14")
    job = subprocess.Popen(
        [sys.executable, "-m", "hatd", "provision", name, "--role-password-stdin"],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert job.stdin is not None
        job.stdin.write(password + "\n")
        job.stdin.close()
        wait_for(
            pg.with_database(admin_dsn, name),
            "SELECT count(*) = $1 FROM schema_migrations",
            len(available_migrations()),
        )
        assert job.poll() is None
    finally:
        job.kill()
        job.wait()

    [role] = query(admin_dsn, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", name)
    assert role["rolcanlogin"] is False
    assert not can_log_in(hat_dsn)
    # The HAT's pod, restarting meanwhile, cannot make the HAT with its own defaults.
    pod = hatd("create-owner", env=hatd_env(tmp_path, database_url=hat_dsn))
    assert (pod.returncode, pod.stdout) == (1, "")
    assert "not permitted to log in" in pod.stderr
    admin_hat = pg.with_database(admin_dsn, name)
    assert query(admin_hat, "SELECT count(*) FROM accounts")[0][0] == 0
    before = server_state(admin_dsn, name)

    again = hatd("provision", name, env=hatd_env(tmp_path, database_url=admin_dsn), stdin=password + "\n")

    assert (again.returncode, again.stdout) == (1, "")
    assert f"hatd: the HAT {name!r} was left unfinished" in again.stderr
    assert f"`hatd provision {name} --exist-ok`" in again.stderr
    assert "Nothing was changed." in again.stderr
    assert server_state(admin_dsn, name) == before

    env = hatd_env(tmp_path, database_url=admin_dsn, owner_password="the-configured-one")
    finished = hatd("provision", name, "--exist-ok", "--role-password-stdin", env=env, stdin=password + "\n")

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith(f"Finishing the HAT {name}, left unfinished by an earlier provisioning.\n")
    assert start_settings(finished.stdout)["HATD_DATABASE_URL"] == provision.hat_dsn(admin_dsn, name, "ROLE-PASSWORD")
    assert can_log_in(hat_dsn)
    [owner] = query(hat_dsn, "SELECT pass_hash FROM accounts WHERE role = 'owner'")
    assert password_matches("the-configured-one", owner["pass_hash"])
    assert query(hat_dsn, "SELECT count(*) FROM signing_keys")[0][0] == 1

    rerun = hatd("provision", name, "--exist-ok", "--role-password-stdin", env=env, stdin=password + "\n")

    assert (rerun.returncode, rerun.stdout) == (0, f"The HAT {name} exists already; nothing was changed.\n")


def unfinished_role(admin_dsn: str, name: str) -> None:
    """What a provisioning killed right after its first statement leaves: hatd's role, no database."""
    query(admin_dsn, f'CREATE ROLE "{name}" NOLOGIN')
    query(admin_dsn, f"COMMENT ON ROLE \"{name}\" IS '{provision.ROLE_COMMENT}'")


def test_exist_ok_finishes_a_hat_whose_provisioning_stopped_after_making_its_role(
    tmp_path: Path, admin_dsn: str, new_name: NewName
) -> None:
    name = new_name()
    unfinished_role(admin_dsn, name)
    env = hatd_env(tmp_path, database_url=admin_dsn, owner_password="finished-owner")

    result = hatd("provision", name, "--exist-ok", "--connection-limit", "30", env=env)

    assert result.returncode == 0, result.stderr
    hat_dsn = start_settings(result.stdout)["HATD_DATABASE_URL"]
    assert can_log_in(hat_dsn)
    [role] = query(admin_dsn, "SELECT rolconnlimit, rolpassword FROM pg_authid WHERE rolname = $1", name)
    assert role["rolconnlimit"] == 30
    assert role["rolpassword"].startswith("SCRAM-SHA-256$")
    [database] = query(
        admin_dsn,
        "SELECT pg_get_userbyid(datdba) AS owner, datacl::text[] AS acl FROM pg_database WHERE datname = $1",
        name,
    )
    assert (database["owner"], database["acl"]) == (name, [f"{name}=CTc/{name}"])
    [owner] = query(hat_dsn, "SELECT pass_hash FROM accounts WHERE role = 'owner'")
    assert password_matches("finished-owner", owner["pass_hash"])


def test_a_hat_that_cannot_be_finished_keeps_a_role_that_cannot_log_in(
    tmp_path: Path, admin_dsn: str, new_name: NewName
) -> None:
    name = new_name()
    unfinished_role(admin_dsn, name)
    env = hatd_env(tmp_path, database_url=admin_dsn, owner_password="x" * 73)

    result = hatd("provision", name, "--exist-ok", env=env)

    assert (result.returncode, result.stdout.splitlines()[:1]) == (
        1,
        [f"Finishing the HAT {name}, left unfinished by an earlier provisioning."],
    )
    assert "HATD_OWNER_PASSWORD is longer than 72 bytes" in result.stderr
    [role] = query(admin_dsn, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", name)
    assert role["rolcanlogin"] is False


def test_an_unfinished_hat_on_the_embedded_server_is_not_served_and_says_how_to_finish_it(
    tmp_path: Path, data_dir: Path
) -> None:
    with EmbeddedPostgres(data_dir) as embedded:
        unfinished_role(embedded.dsn(), "alice")
    env = hatd_env(tmp_path, data_dir=str(data_dir), embedded_database="alice")

    result = hatd("migrate", env=env)

    assert (result.returncode, result.stdout) == (1, "")
    assert (
        "the HAT 'alice' on the embedded server in " in result.stderr
        and "was left unfinished by a provisioning that stopped part-way: finish it with "
        "`hatd provision alice --exist-ok`"
        in result.stderr
    ), result.stderr

    finished = hatd("provision", "alice", "--exist-ok", env=hatd_env(tmp_path, data_dir=str(data_dir)))

    assert finished.returncode == 0, finished.stderr
    assert hatd("migrate", env=env).stdout == "the database is up to date\n"


# -- served ------------------------------------------------------------------------------------


def request(
    port: int, method: str, path: str, token: str | None = None, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One HTTP request over a real TCP connection: (status, the JSON body, or the text if not JSON)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        sent = dict(headers or {})
        if token is not None:
            sent["X-Auth-Token"] = token
        data = None if body is None else json.dumps(body)
        if data is not None:
            sent["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        text = response.read().decode()
        is_json = response.getheader("Content-Type", "").startswith("application/json")
        return response.status, json.loads(text) if is_json else text
    finally:
        conn.close()


def wait_healthy(server: Server, timeout: float = 30) -> None:
    """Until GET /health answers 200 (failing with the server's output if it exits or never does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"hatd serve exited with {server.process.returncode}\n{server.output()}")
        try:
            status, body = request(server.port, "GET", "/health")
        except OSError:
            time.sleep(0.1)
            continue
        assert (status, body["status"]) == (200, "ok"), server.output()
        return
    pytest.fail(f"hatd serve was not healthy within {timeout} s\n{server.output()}")


StartServer = Callable[[dict[str, str], Path], Server]


@pytest.fixture
def serve() -> Iterator[StartServer]:
    """serve(settings, folder): `hatd serve` with exactly these HATD_* settings, healthy; every server
    started is killed after the test, however it ends."""
    started: list[Server] = []

    def start(settings: dict[str, str], folder: Path) -> Server:
        folder.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith("HATD_")}
        env |= {"HATD_HOST": "127.0.0.1", "HATD_LOG_LEVEL": "warning", **settings}
        server = Server(env, folder)
        started.append(server)
        wait_healthy(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.kill()


def log_in(port: int, email: str, password: str) -> str:
    status, body = request(port, "GET", "/users/access_token", headers={"username": email, "password": password})
    assert status == 200, body
    token: str = body["accessToken"]
    return token


@pytest.mark.slow
def test_three_hats_on_one_server_cannot_see_into_each_other(
    tmp_path: Path, admin_dsn: str, new_name: NewName, serve: StartServer
) -> None:
    hats: dict[str, dict[str, Any]] = {}
    for label in ("alice", "bob", "carol"):
        name, port = new_name(), free_port()
        settings = provisioned(
            tmp_path / label,
            admin_dsn,
            name,
            "--address",
            f"http://127.0.0.1:{port}",
            owner_email=f"{label}@hats.test",
            owner_password=f"{label}-owner-password",
        )
        assert settings["HATD_PORT"] == str(port)
        server = serve(settings, tmp_path / label)
        token = log_in(port, f"{label}@hats.test", f"{label}-owner-password")
        hats[label] = {"port": port, "server": server, "token": token, "address": settings["HATD_HAT_ADDRESS"]}
    alice, others = hats["alice"], [hats["bob"], hats["carol"]]

    # Alice's data: a table with a field, a record, a value.
    status, table = request(
        alice["port"],
        "POST",
        "/data/table",
        alice["token"],
        {"name": "diary", "source": "pen", "fields": [{"name": "entry"}]},
    )
    assert status == 201, table
    status, stored = request(
        alice["port"],
        "POST",
        "/data/record/values",
        alice["token"],
        {"record": {"name": "monday"}, "values": [{"field": {"id": table["fields"][0]["id"]}, "value": "secret"}]},
    )
    assert status == 201, stored
    status, mine = request(alice["port"], "GET", f"/data/table/{table['id']}/values", alice["token"])
    assert status == 200
    values = [
        value["value"] for item in mine for tree in item["tables"] for f in tree["fields"] for value in f["values"]
    ]
    assert values == ["secret"]

    keys = {label: request(hat["port"], "GET", "/publickey")[1] for label, hat in hats.items()}
    assert len(set(keys.values())) == 3
    for label, hat in hats.items():
        claims = jwt.decode(hat["token"], keys[label], algorithms=["RS256"], issuer=hat["address"].split("://")[1])
        assert claims["accessScope"] == "owner"
    assert len({hat["address"] for hat in hats.values()}) == 3

    for other in others:
        # Alice's token means nothing to another HAT: another key, another issuer.
        status, body = request(other["port"], "GET", "/users/access_token/validate", alice["token"])
        assert status == 401, body
        assert set(body) == {"message", "cause"}
        assert request(other["port"], "GET", "/data/sources", alice["token"])[0] == 401
        # Nor does the other owner see Alice's data with its own token.
        assert request(other["port"], "GET", "/data/sources", other["token"]) == (200, [])
        status, body = request(other["port"], "GET", "/data/table?name=diary&source=pen", other["token"])
        assert status == 404, body
        status, body = request(other["port"], "GET", f"/data/table/{table['id']}/values", other["token"])
        assert status == 404, body
        assert request(other["port"], "GET", "/users/access_token/validate", other["token"])[0] == 200

    for hat in hats.values():
        assert hat["server"].terminate() == 0, hat["server"].output()


@pytest.mark.slow
def test_a_hat_provisioned_on_the_embedded_server_is_served_by_its_name(
    tmp_path: Path, data_dir: Path, serve: StartServer
) -> None:
    port = free_port()
    env = hatd_env(tmp_path, data_dir=str(data_dir), owner_password="embedded-owner")
    assert "HATD_DATABASE_URL" not in env

    result = hatd("provision", "alice", "--address", f"http://127.0.0.1:{port}", env=env)

    assert result.returncode == 0, result.stderr
    settings = start_settings(result.stdout)
    assert settings == {
        "HATD_DATA_DIR": str(data_dir.resolve()),
        "HATD_EMBEDDED_DATABASE": "alice",
        "HATD_HAT_ADDRESS": f"http://127.0.0.1:{port}",
        "HATD_PORT": str(port),
    }
    assert "password, shown only this once" not in result.stdout.split("Serve it with")[1]

    server = serve(settings, tmp_path / "alice")

    token = log_in(port, "owner@cli.test", "embedded-owner")
    assert request(port, "GET", "/users/access_token/validate", token) == (200, {"message": "Authenticated"})
    assert server.terminate() == 0, server.output()

    # On hatd's own server a HAT's role reaches its own database only: not postgres or template1.
    first = hatd("migrate", env=env)  # the first HAT, `hatd`, served at HATD_HAT_ADDRESS
    assert first.returncode == 0, first.stderr
    with EmbeddedPostgres(data_dir) as embedded:
        for role in ("alice", "hatd"):
            for database in ("postgres", "template1"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    query(embedded.dsn(database, user=role), "SELECT 1")
        assert query(embedded.dsn("alice", user="alice"), "SELECT 1")[0][0] == 1

    # Neither the first HAT's address nor alice's goes to another HAT.
    for address in (env["HATD_HAT_ADDRESS"], f"http://127.0.0.1:{port}"):
        taken = hatd("provision", "carol", "--address", address, env=env)
        assert taken.returncode == 1 and "already has the address" in taken.stderr, taken.stderr

    # Nor does the first HAT take alice's (in any scheme), whatever HATD_HAT_ADDRESS says.
    clash = hatd("migrate", env={**env, "HATD_HAT_ADDRESS": f"https://127.0.0.1:{port}"})
    assert (clash.returncode, clash.stdout) == (1, "")
    assert clash.stderr.endswith(
        f"hatd: the HAT 'alice' on this server already has the address 127.0.0.1:{port}: two HATs would sign "
        "tokens with the same issuer. Serve this one at another address (HATD_HAT_ADDRESS). Nothing was changed.\n"
    )
    taken = hatd("provision", "carol", "--address", env["HATD_HAT_ADDRESS"], env=env)
    assert taken.returncode == 1 and "the HAT 'hatd' on this server already has the address" in taken.stderr

    # alice is served at her own address only: her tokens' issuer.
    moved = hatd("serve", env={**env, **settings, "HATD_HAT_ADDRESS": "http://elsewhere.example"}, timeout=30)
    assert (moved.returncode, moved.stdout) == (1, "")
    assert (
        f"hatd: the HAT 'alice' was provisioned for the address 127.0.0.1:{port}, not elsewhere.example: serve it "
        "with HATD_HAT_ADDRESS set to its address"
    ) in moved.stderr

    missing = hatd("migrate", env={**env, "HATD_EMBEDDED_DATABASE": "bob"})

    assert (missing.returncode, missing.stdout) == (1, "")
    assert "holds no HAT named 'bob' (HATD_EMBEDDED_DATABASE): make it with `hatd provision bob`" in missing.stderr


def refuses_connections(port: int) -> bool:
    """Whether nothing accepts connections on the port any more. A connection the kernel queued
    just as the listener closed is reset rather than refused: that is also a listener gone."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    return False


@pytest.mark.slow
async def test_sigterm_stops_accepting_lets_the_request_in_flight_finish_then_exits_0(
    tmp_path: Path, admin_dsn: str, new_name: NewName, serve: StartServer
) -> None:
    name, port = new_name(), free_port()
    settings = provisioned(
        tmp_path, admin_dsn, name, "--address", f"http://127.0.0.1:{port}", owner_password="graceful-owner"
    )
    server = serve(settings, tmp_path / "serve")
    token = log_in(port, "owner@cli.test", "graceful-owner")
    status, table = request(port, "POST", "/data/table", token, {"name": "t", "source": "s", "fields": [{"name": "f"}]})
    assert status == 201, table
    body = {"record": {"name": "r"}, "values": [{"field": {"id": table["fields"][0]["id"]}, "value": "kept"}]}
    assert request(port, "POST", "/data/record/values", token, body)[0] == 201

    admin = await asyncpg.connect(pg.with_database(admin_dsn, name))
    try:
        lock = admin.transaction()
        await lock.start()
        await admin.execute("LOCK TABLE data_values IN ACCESS EXCLUSIVE MODE")
        in_flight = asyncio.ensure_future(
            asyncio.to_thread(request, port, "GET", f"/data/table/{table['id']}/values", token)
        )
        # Deterministic: the read is known to wait on the lock before the signal is sent.
        waiting = "SELECT count(*) FROM pg_locks WHERE relation = 'data_values'::regclass AND NOT granted"
        deadline = time.monotonic() + 10
        while await admin.fetchval(waiting) == 0:
            assert time.monotonic() < deadline, server.output()
            assert not in_flight.done(), in_flight.result()
            await asyncio.sleep(0.05)

        server.process.send_signal(signal.SIGTERM)

        deadline = time.monotonic() + 10
        while not await asyncio.to_thread(refuses_connections, port):
            assert time.monotonic() < deadline, "still accepting connections after SIGTERM\n" + server.output()
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert server.process.poll() is None, server.output()
        assert not in_flight.done()

        await lock.rollback()
    finally:
        await admin.close()

    status, items = await asyncio.wait_for(in_flight, timeout=30)
    assert status == 200, items
    assert [v["value"] for item in items for tree in item["tables"] for f in tree["fields"] for v in f["values"]] == [
        "kept"
    ]
    assert await asyncio.to_thread(server.process.wait, 30) == 0, server.output()
