"""A minimal VBA project (MS-OVBA) in a minimal compound file (MS-CFB v3), written from scratch because neither
olefile nor oletools can write one and no macro sample ships with them. Just enough for olevba to read the source:
a root holding a `VBA` storage (`dir`, one module, `_VBA_PROJECT`) and a `PROJECT` stream, all in the mini stream."""

from __future__ import annotations

import struct
import zipfile
from io import BytesIO

FREE, END, FATSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def ovba_compress(data: bytes) -> bytes:
    """MS-OVBA 2.4.1 compressed container using literal tokens only (valid, just not smaller)."""
    out = bytearray(b"\x01")
    for start in range(0, len(data), 3072):
        piece = data[start : start + 3072]
        body = bytearray()
        for i in range(0, len(piece), 8):
            body += b"\x00" + piece[i : i + 8]
        size = len(body) + 2
        out += struct.pack("<H", (size - 3) | (0b011 << 12) | (1 << 15)) + body
    return bytes(out)


def _rec(rid: int, payload: bytes) -> bytes:
    return struct.pack("<HI", rid, len(payload)) + payload


def vba_dir(module: str) -> bytes:
    name = b"VBAProject"
    out = _rec(0x0001, struct.pack("<I", 1))  # SYSKIND: 32-bit Windows
    out += _rec(0x0002, struct.pack("<I", 0x409)) + _rec(0x0014, struct.pack("<I", 0x409))
    out += _rec(0x0003, struct.pack("<H", 1252)) + _rec(0x0004, name)
    out += _rec(0x0005, b"") + _rec(0x0040, b"")  # docstring + unicode docstring
    out += _rec(0x0006, b"") + _rec(0x003D, b"")  # help file path 1 and 2
    out += _rec(0x0007, struct.pack("<I", 0)) + _rec(0x0008, struct.pack("<I", 0))
    out += struct.pack("<HIIH", 0x0009, 4, 1, 0)  # version
    out += _rec(0x000C, b"") + _rec(0x003C, b"")  # constants
    out += struct.pack("<HIH", 0x000F, 2, 1)  # PROJECTMODULES: one module
    out += _rec(0x0013, struct.pack("<H", 0xFFFF))
    m = module.encode()
    out += _rec(0x0019, m) + _rec(0x001A, m) + _rec(0x0032, module.encode("utf-16-le"))
    out += _rec(0x0031, struct.pack("<I", 0))  # text offset 0: no performance cache
    out += struct.pack("<HI", 0x0021, 0)  # procedural module
    out += struct.pack("<HI", 0x002B, 0)  # module terminator
    out += struct.pack("<HI", 0x0010, 0)  # dir terminator
    return out


def _dir_entry(
    name: str, kind: int, child: int = NOSTREAM, right: int = NOSTREAM, start: int = 0, size: int = 0
) -> bytes:
    raw = (name + "\0").encode("utf-16-le")
    return struct.pack(
        "<64sHBBIII16sIQQIQ", raw, len(raw), kind, 1, NOSTREAM, right, child, b"\0" * 16, 0, 0, 0, start, size
    )


def compound_file(vba_source: str, module: str = "Module1") -> bytes:
    """A vbaProject.bin-style OLE file whose one module holds `vba_source`."""
    project = f'ID="{{00000000-0000-0000-0000-000000000000}}"\r\nModule={module}\r\nName="VBAProject"\r\n'.encode()
    streams = [
        ("dir", ovba_compress(vba_dir(module))),
        (module, ovba_compress(vba_source.encode("cp1252"))),
        ("_VBA_PROJECT", b"\xcc\x61\xff\xff\x00\x00\x00"),
        ("PROJECT", project),
    ]
    mini = bytearray()
    minifat: list[int] = []
    starts = []
    for _, data in streams:
        assert len(data) < 4096
        first = len(mini) // 64
        n = max(1, -(-len(data) // 64))
        starts.append(first)
        minifat += [first + i + 1 for i in range(n - 1)] + [END]
        mini += data + b"\0" * (n * 64 - len(data))
    mini_used = len(mini)
    mini_sectors = -(-len(mini) // 512)
    mini += b"\0" * (mini_sectors * 512 - len(mini))
    # sectors: 0 FAT, 1-2 directory, 3 mini FAT, 4.. mini stream
    fat = [FATSECT, 2, END, END] + [5 + i for i in range(mini_sectors - 1)] + [END]
    fat += [FREE] * (128 - len(fat))
    directory = b"".join(
        [
            _dir_entry("Root Entry", 5, child=1, start=4, size=mini_used),
            _dir_entry("VBA", 1, child=2, right=5),
            _dir_entry("dir", 2, right=3, start=starts[0], size=len(streams[0][1])),
            _dir_entry(module, 2, right=4, start=starts[1], size=len(streams[1][1])),
            _dir_entry("_VBA_PROJECT", 2, start=starts[2], size=len(streams[2][1])),
            _dir_entry("PROJECT", 2, start=starts[3], size=len(streams[3][1])),
        ]
    )
    directory += b"\0" * (1024 - len(directory))
    minifat_bytes = struct.pack(f"<{len(minifat)}I", *minifat) + struct.pack("<I", FREE) * (128 - len(minifat))
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"\0" * 16, 0x3E, 3, 0xFFFE, 9, 6, b"\0" * 6,
        0, 1, 1, 0, 4096, 3, 1, END, 0,
    )  # fmt: skip
    header += struct.pack("<I", 0) + struct.pack("<I", FREE) * 108
    assert len(header) == 512
    return header + struct.pack("<128I", *fat) + directory + minifat_bytes + bytes(mini)


def docm(vba_source: str) -> bytes:
    """A macro-enabled Word document (zip) carrying the VBA project as word/vbaProject.bin."""
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.ms-word.document.macroEnabled.'
            'main+xml"/></Types>',
        )
        z.writestr("word/document.xml", '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/'
                   '2006/main"><w:body/></w:document>')  # fmt: skip
        z.writestr("word/vbaProject.bin", compound_file(vba_source))
    return buf.getvalue()
