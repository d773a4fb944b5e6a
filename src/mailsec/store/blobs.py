"""Content-addressed blob store for raw messages: `<root>/ab/cd/<sha256>`, written durably (temp file, fsync,
rename, fsync of the directory) so a blob that `put` returned for survives a crash."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

_HEX = frozenset("0123456789abcdef")


class BlobNotFound(KeyError):
    pass


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)  # blobs are raw mail: private

    def path_for(self, digest: str) -> Path:
        if len(digest) != 64 or not _HEX.issuperset(digest):
            raise BlobNotFound(digest)
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes, fsync: bool = True) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        try:
            if path.stat().st_size == len(data):
                return digest
        except FileNotFoundError:
            pass
        # A unique temp name (like mkstemp, 0600, O_EXCL); the directories are made only when missing (the
        # common case, a known prefix, costs no mkdir: this runs once a message on the queue worker's path).
        tmp = str(path.parent / f".tmp-{secrets.token_hex(8)}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, flags, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if fsync:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return digest

    def get(self, digest: str) -> bytes:
        try:
            return self.path_for(digest).read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFound(digest) from exc

    def exists(self, digest: str) -> bool:
        try:
            return self.path_for(digest).exists()
        except BlobNotFound:
            return False
