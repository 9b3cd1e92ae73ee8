"""`hatd export` and `hatd import` run as real processes: the file is the same bytes as GET /export,
a new HAT made by `hatd create-owner` takes it, exporting that gives the same bytes again, and a
refused import exits 1 saying why, with nothing changed."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hatd.app import create_app
from hatd.settings import Settings
from tests import pg
from tests.conftest import auth, login, new_account
from tests.openapi_check import check_every_response
from tests.test_cli import REPO, hatd, hatd_env
from tests.test_export import fill

ISSUER = "http://hat.test"  # the test app's address: the header names it


def hatd_bytes(*args: str, env: dict[str, str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "hatd", *args], cwd=REPO, env=env, input=stdin, capture_output=True, timeout=60
    )


@pytest.fixture
def new_database(admin_dsn: str) -> Iterator[str]:
    name = asyncio.run(pg.empty_database(admin_dsn))
    try:
        yield pg.with_database(admin_dsn, name)
    finally:
        asyncio.run(pg.drop(admin_dsn, name))


async def test_export_and_import_as_commands(
    client: Any, owner_token: str, database: str, new_database: str, tmp_path: Path
) -> None:
    await fill(client, owner_token)
    served = await (await client.get("/export", headers=auth(owner_token))).read()
    source = hatd_env(tmp_path, database_url=database, hat_address=ISSUER)
    target = hatd_env(tmp_path, database_url=new_database, hat_address=ISSUER, owner_password="target-password")
    file = tmp_path / "hat.jsonl"

    exported = await asyncio.to_thread(hatd, "export", str(file), env=source)

    assert exported.returncode == 0, exported.stderr
    rows = served.count(b"\n") - 2  # less the header and the digest line
    assert exported.stdout == f"Exported {rows:,} rows of the HAT {ISSUER} to {file}.\n"
    assert exported.stderr == ""  # no terminal: no progress bar
    assert file.read_bytes() == served
    assert sorted(await asyncio.to_thread(os.listdir, tmp_path)) == ["hat.jsonl"]

    created = await asyncio.to_thread(hatd, "create-owner", env=target)
    assert created.returncode == 0, created.stderr
    imported = await asyncio.to_thread(hatd, "import", str(file), env=target)

    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == (
        f"Imported {rows:,} rows from {file} (a copy of the HAT {ISSUER}).\n"
        "The owner and platform accounts keep this HAT's passwords; other accounts have no password now.\n"
    )
    again = await asyncio.to_thread(hatd_bytes, "export", "-", env=target)
    assert again.returncode == 0, again.stderr
    assert again.stdout == served

    # Once more into the same HAT: it is not empty now. From standard input this time.
    refused = await asyncio.to_thread(hatd_bytes, "import", "-", env=target, stdin=served)
    assert (refused.returncode, refused.stdout) == (1, b"")
    assert refused.stderr.decode().startswith(
        "hatd: import refused, nothing was changed: this HAT is not empty (it has accounts, data_tables,"
    )
    assert (await asyncio.to_thread(hatd_bytes, "export", "-", env=target)).stdout == served


async def test_imported_app_accounts_log_in_again_once_set_password_gives_them_one(
    client: Any,
    owner_token: str,
    database: str,
    new_database: str,
    tmp_path: Path,
    settings: Settings,
    aiohttp_client: Any,
) -> None:
    debit, _ = await new_account(client, owner_token, "dataDebit", number="debit")
    credit, _ = await new_account(client, owner_token, "dataCredit", number="credit")
    source = hatd_env(tmp_path, database_url=database, hat_address=ISSUER)
    target = hatd_env(tmp_path, database_url=new_database, hat_address=ISSUER, owner_password="target-password")
    file = tmp_path / "hat.jsonl"
    assert (await asyncio.to_thread(hatd, "export", str(file), env=source)).returncode == 0
    assert (await asyncio.to_thread(hatd, "create-owner", env=target)).returncode == 0
    assert (await asyncio.to_thread(hatd, "import", str(file), env=target)).returncode == 0
    restored = check_every_response(await aiohttp_client(create_app(settings.replace(database_url=new_database))))
    response = await restored.get(
        "/users/access_token", headers={"username": "appdebit@example.com", "password": "app-password"}
    )
    assert response.status == 401

    # By email, in any case, and by name: what the account logs in with.
    by_email = await asyncio.to_thread(
        hatd, "set-password", "AppDebit@Example.com", "--password-stdin", env=target, stdin="debit-new-password\n"
    )
    by_name = await asyncio.to_thread(
        hatd, "set-password", "appcredit", "--password-stdin", env=target, stdin="credit-new-password\n"
    )

    assert by_email.returncode == 0, by_email.stderr
    assert by_email.stdout == f"Set the password of the dataDebit account AppDebit@Example.com ({debit['userId']}).\n"
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout == f"Set the password of the dataCredit account appcredit ({credit['userId']}).\n"
    await login(restored, "appdebit@example.com", "debit-new-password")
    await login(restored, "appcredit", "credit-new-password")
    await login(restored, "owner@hat.test", "target-password")


def test_a_bad_file_exits_1_naming_the_line(tmp_path: Path, new_database: str) -> None:
    env = hatd_env(tmp_path, database_url=new_database, owner_password="pw")
    assert hatd("create-owner", env=env).returncode == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format":"hatd-export","version":3}\n')

    result = hatd("import", str(bad), env=env)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "hatd: import refused, nothing was changed: line 1: export format version 3; this hatd reads versions 1 and 2\n"
    )
    missing = hatd("import", str(tmp_path / "nope.jsonl"), env=env)
    assert (missing.returncode, missing.stderr) == (
        1,
        f"hatd: cannot read {tmp_path / 'nope.jsonl'}: No such file or directory\n",
    )
    unwritable = hatd("export", str(tmp_path / "no" / "such" / "dir.jsonl"), env=env)
    assert unwritable.returncode == 1
    assert unwritable.stderr.startswith(f"hatd: cannot write {tmp_path / 'no' / 'such' / 'dir.jsonl'}: ")


def test_help_lists_export_and_import(tmp_path: Path) -> None:
    top = hatd("--help", env=hatd_env(tmp_path))
    assert "export" in top.stdout and "import" in top.stdout
    text = " ".join(hatd("import", "--help", env=hatd_env(tmp_path)).stdout.split())
    assert "The file's accounts replace those; the owner and platform keep this HAT's passwords" in text


def test_the_export_file_is_the_owners_alone_and_never_follows_a_link(tmp_path: Path, new_database: str) -> None:
    env = hatd_env(tmp_path, database_url=new_database, owner_password="pw")
    assert hatd("create-owner", env=env).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    file = out / "hat.jsonl"

    exported = hatd("export", str(file), env=env)

    assert exported.returncode == 0, exported.stderr
    assert stat.S_IMODE(file.stat().st_mode) == 0o600  # not the umask's 0644: it is the owner's data
    assert sorted(os.listdir(out)) == ["hat.jsonl"]

    # A link planted at the partial file's name is not followed: the file it points at stays as it was.
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    partial = out / ".again.jsonl.partial"
    partial.symlink_to(victim)

    refused = hatd("export", str(out / "again.jsonl"), env=env)

    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        f"hatd: cannot write {out / 'again.jsonl'}: {partial} exists (another export under way, or one cut "
        "short): remove it first\n"
    )
    assert victim.read_text() == "keep me"
    assert partial.is_symlink() and not (out / "again.jsonl").exists()
