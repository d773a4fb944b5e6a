"""Zip files `zipfile` cannot write: members with pre-compressed data (bombs built in milliseconds), lying sizes
and the encrypted flag set (ZipCrypto headers are not needed: a scanner must stop at the flag)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass


@dataclass
class RawMember:
    name: str
    data: bytes  # as stored: deflated when method is 8
    crc: int
    file_size: int  # the size the headers declare
    method: int = 8
    encrypted: bool = False


def deflate_zeros(total: int, chunk: int = 1 << 20) -> bytes:
    """A raw deflate stream of `total` zero bytes, built by repeating one sync-flushed block: ~1 KB per MiB."""
    assert total % chunk == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\0" * chunk) + c.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    return block * (total // chunk) + end


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def member(name: str, data: bytes, *, encrypted: bool = False) -> RawMember:
    return RawMember(name, deflate(data), zlib.crc32(data), len(data), 8, encrypted)


def build_zip(members: list[RawMember]) -> bytes:
    out = bytearray()
    central = bytearray()
    for m in members:
        name = m.name.encode()
        flags = 0x1 if m.encrypted else 0
        offset = len(out)
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, flags, m.method, 0, 0x21, m.crc, len(m.data), m.file_size, len(name), 0
        )
        out += name + m.data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50, 20, 20, flags, m.method, 0, 0x21, m.crc, len(m.data), m.file_size,
            len(name), 0, 0, 0, 0, 0, offset,
        )  # fmt: skip
        central += name
    cd_offset = len(out)
    out += central
    n = len(members)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), cd_offset, 0)
    return bytes(out)


def gzip_of_zeros(total: int) -> bytes:
    """A gzip member inflating to `total` zero bytes (CRC left wrong: a scanner must stop long before the end)."""
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + deflate_zeros(total) + struct.pack("<II", 0, total & 0xFFFFFFFF)
