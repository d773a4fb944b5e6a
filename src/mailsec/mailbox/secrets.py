"""Secrets at rest (mailbox passwords, OAuth client secrets, service-account keys): Fernet (AES-128-CBC with an
HMAC) with a key kept in the data directory, readable by its owner only. A database copied without the data
directory's key file reveals no credential."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "mailbox-secrets.key"


class SecretError(Exception):
    """A stored secret cannot be read with this data directory's key."""


def _key(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key


def encrypt(data_dir: Path, secret: str) -> bytes:
    return Fernet(_key(data_dir)).encrypt(secret.encode("utf-8"))


def decrypt(data_dir: Path, token: bytes) -> str:
    try:
        return Fernet(_key(data_dir)).decrypt(bytes(token)).decode("utf-8")
    except InvalidToken as exc:
        path = data_dir / KEY_FILE
        raise SecretError(f"a stored secret does not open with {path} (another data directory's key?)") from exc
