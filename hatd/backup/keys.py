"""The owner's backup key (an age X25519 identity in <data_dir>/backup.key) and sealing files with
it: zstd, then age. A sealed file is a standard age file of a zstd stream, so the owner can open it
without hatd too: `age -d -i backup.key FILE | zstd -d`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pyrage
import zstandard

KEY_FILE = "backup.key"
# zstd level 3: most of the gain of higher levels at a fraction of their time; all cores.
_LEVEL = 3
_CHUNK = 1 << 20
AGE_MAGIC = b"age-encryption.org/v1\n"


class BackupError(RuntimeError):
    """A backup or restore cannot go on; the message says why and, where it can, what to do."""


def describe(exc: Exception) -> str:
    """An error writing a sealed file, said briefly. (pyrage says an error of the file it writes,
    ENOSPC on a full backup disk, as EncryptError, not OSError: catch both.)"""
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def ensure_key(data_dir: Path) -> tuple[Path, bool]:
    """(the key file, whether it was made now). Made once, readable by its owner only."""
    path = key_path(data_dir)
    if path.exists():
        return path, False
    data_dir.mkdir(parents=True, exist_ok=True)
    identity = pyrage.x25519.Identity.generate()
    text = f"# hatd backup key, made for {data_dir.resolve()}: without it the backups cannot be read.\n"
    text += f"# public key: {identity.to_public()}\n{identity}\n"
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    return path, True


def load_identity(path: Path) -> pyrage.x25519.Identity:
    """The identity in a key file (comment lines allowed), or BackupError saying what is wrong."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise BackupError(f"cannot read the backup key {path}: {exc.strerror or exc}") from None
    secrets = [line.strip() for line in lines if line.strip().startswith("AGE-SECRET-KEY-")]
    if len(secrets) != 1:
        raise BackupError(f"{path} is not a hatd backup key (one AGE-SECRET-KEY-... line)")
    try:
        return pyrage.x25519.Identity.from_str(secrets[0])
    except pyrage.IdentityError:
        raise BackupError(f"{path} is not a hatd backup key (its AGE-SECRET-KEY line is damaged)") from None


def recipient_of(identity: pyrage.x25519.Identity) -> str:
    return str(identity.to_public())


def seal(source: Path, target: Path, recipient: str, scratch: Path) -> int:
    """Compress and encrypt `source` to `target` (written beside it and renamed, fsynced), 0600;
    returns the size written."""
    packed = scratch / f"{target.name}.zst"
    with source.open("rb") as src, packed.open("wb") as out:
        zstandard.ZstdCompressor(level=_LEVEL, threads=-1).copy_stream(src, out, read_size=_CHUNK, write_size=_CHUNK)
    try:
        return seal_packed(packed, target, recipient)
    finally:
        packed.unlink(missing_ok=True)


def seal_packed(packed: Path, target: Path, recipient: str) -> int:
    """Encrypt an already compressed file to `target`, atomically and durably."""
    partial = target.with_name(f".{target.name}.partial")
    pyrage.encrypt_file(str(packed), str(partial), [pyrage.x25519.Recipient.from_str(recipient)])
    partial.chmod(0o600)
    with partial.open("rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, target)
    fsync_dir(target.parent)
    return target.stat().st_size


@contextmanager
def compressor(path: Path) -> Iterator[BinaryIO]:
    """A binary stream that writes zstd to `path`."""
    with path.open("wb") as raw, zstandard.ZstdCompressor(level=_LEVEL, threads=-1).stream_writer(raw) as out:
        yield out  # type: ignore[misc]


def open_sealed(source: Path, target: Path, identity: pyrage.x25519.Identity, scratch: Path) -> None:
    """Decrypt and decompress `source` to `target`; BackupError naming the file if it was changed."""
    packed = scratch / f"{target.name}.zst.open"
    try:
        if not source.is_file():
            raise BackupError(f"{source} is missing")
        try:
            pyrage.decrypt_file(str(source), str(packed), [identity])
        except (pyrage.DecryptError, OSError) as exc:  # pyrage's file functions say a bad tag as OSError
            raise BackupError(
                f"{source} is damaged or not sealed with this key: decryption failed ({exc}). Nothing in it was used."
            ) from None
        try:
            # What comes out is as private as the backup key: readable by its owner only.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)
            with packed.open("rb") as src, os.fdopen(fd, "wb") as out:
                zstandard.ZstdDecompressor().copy_stream(src, out, read_size=_CHUNK, write_size=_CHUNK)
        except zstandard.ZstdError as exc:
            raise BackupError(f"{source} is damaged: its compressed stream does not decode ({exc})") from None
    finally:
        packed.unlink(missing_ok=True)


def decrypt_bytes(source: Path, identity: pyrage.x25519.Identity) -> bytes:
    """A small sealed file's content."""
    try:
        return zstandard.ZstdDecompressor().decompressobj().decompress(pyrage.decrypt(source.read_bytes(), [identity]))
    except (pyrage.DecryptError, zstandard.ZstdError) as exc:
        raise BackupError(f"{source} is damaged or not sealed with this key: {exc}") from None


def seal_bytes(data: bytes, target: Path, recipient: str) -> int:
    partial = target.with_name(f".{target.name}.partial")
    sealed = pyrage.encrypt(
        zstandard.ZstdCompressor(level=_LEVEL).compress(data), [pyrage.x25519.Recipient.from_str(recipient)]
    )
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(sealed)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, target)
    fsync_dir(target.parent)
    return len(sealed)


def copy_key(key: Path, data_dir: Path) -> None:
    """The key a restore used becomes the restored HAT's, so its backups go on with it."""
    target = key_path(data_dir)
    if target.exists():
        return
    shutil.copyfile(key, target)
    target.chmod(0o600)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
