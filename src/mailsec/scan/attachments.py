"""Attachment analysis: what each attachment really is and what it would do when opened.

The true type comes from libmagic, not from the sender's content type or file name. Executables, scripts, shortcuts,
installers and disk images are malware carriers; Office macros are read with olevba (auto-executing ones are decisive);
HTML attachments are searched for credential forms; encrypted archives, Office files and PDFs are reported as
ENCRYPTED because nothing inside them can be inspected. Archives are opened recursively with hard limits on depth,
entry count, total inflated bytes and compression ratio, and every member is read in bounded chunks, so a zip bomb
becomes a ZIP_BOMB finding instead of a crash or an out-of-memory kill."""

from __future__ import annotations

import io
import logging
import re
import struct
import threading
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO, Any

from mailsec.model import Attachment, Disposition, Finding, ParsedMessage
from mailsec.scan.forms import credential_form

log = logging.getLogger(__name__)
D = Disposition

MAX_ATTACHMENTS = 50
MAX_DEEP_BYTES = 25_000_000  # larger attachments get typed but not opened
MAX_DEPTH = 3  # archive in archive in archive
MAX_ENTRIES = 2_000  # members across all archives of one attachment
MAX_INFLATED = 100_000_000  # bytes inflated across all archives of one attachment
MAX_MEMBER_READ = 20_000_000  # bytes kept in memory of any one member
MAX_RATIO = 200  # inflated/compressed of one member ...
RATIO_MIN_SIZE = 10_000_000  # ... when it claims at least this many bytes
MAX_DECLARED = 1_000_000_000  # declared inflated size of one archive
MAX_OLEVBA_BYTES = 20_000_000
CHUNK = 1 << 20

EXECUTABLE_EXT = frozenset(
    [
        "exe",
        "scr",
        "com",
        "pif",
        "cpl",
        "dll",
        "sys",
        "msi",
        "msp",
        "msc",
        "lnk",
        "jar",
        "appx",
        "appxbundle",
        "msix",
        "msixbundle",
        "application",
        "gadget",
        "xll",
        "chm",
        "scf",
        "reg",
        "inf",
        "hlp",
        "cab",
    ]
)
SCRIPT_EXT = frozenset(
    ["js", "jse", "vbs", "vbe", "wsf", "wsh", "wsc", "hta", "ps1", "psm1", "psd1", "bat", "cmd", "sh", "vb", "sct"]
)
DISK_IMAGE_EXT = frozenset(["iso", "img", "vhd", "vhdx", "udf", "dmg"])
HTML_EXT = frozenset(["htm", "html", "shtml", "xhtml", "svg", "mht", "mhtml"])
OFFICE_EXT = frozenset(
    [
        "doc",
        "dot",
        "docx",
        "docm",
        "dotm",
        "xls",
        "xlt",
        "xlsx",
        "xlsm",
        "xlsb",
        "xltm",
        "xla",
        "xlam",
        "ppt",
        "pps",
        "pptx",
        "pptm",
        "ppsm",
        "potm",
        "ppam",
        "rtf",
    ]
)
ARCHIVE_EXT = frozenset(["zip", "gz", "tgz", "rar", "7z", "tar", "bz2", "xz", "ace", "arj", "cab", "z", "lzh"])
_EXEC_MIME = (
    "application/x-dosexec",
    "application/x-msdownload",
    "application/vnd.microsoft.portable-executable",
    "application/x-executable",
    "application/x-pie-executable",
    "application/x-sharedlib",
    "application/x-mach-binary",
    "application/x-msi",
    "application/x-ms-installer",
    "application/x-ms-shortcut",
    "application/x-iso9660-image",
    "application/x-java-archive",
)
_GENERIC_DECLARED = ("application/octet-stream", "application/x-download", "application/force-download", "")
_REFRESH_RE = re.compile(
    r"""(?i)(?:http-equiv\s*=\s*["']?refresh["']?[^>]{0,200}?url\s*=\s*["']?|(?:window|document|top|self)\.location(?:\.href)?\s*=\s*["']|location\.(?:replace|assign)\s*\(\s*["'])(https?://[^"'\s>)]+)"""
)


@dataclass(frozen=True)
class AttachmentOutcome:
    findings: tuple[Finding, ...] = ()
    detections: dict[str, str] = field(default_factory=dict)  # sha256 -> disposition name
    encrypted: frozenset[str] = frozenset()  # sha256 of encrypted attachments


# -- true type ----------------------------------------------------------------------------------------------------

_magic_lock = threading.Lock()
_magic: tuple[object, object] | None = None


def true_type(data: bytes) -> tuple[str, str]:
    """(mime, description) by libmagic from the first 64 KiB; ("", "") when libmagic is unavailable."""
    global _magic
    if not data:
        return "application/x-empty", "empty"
    try:
        import magic

        with _magic_lock:
            if _magic is None:
                _magic = (magic.Magic(mime=True), magic.Magic())
            mime_m, desc_m = _magic
            head = data[:65536]
            return str(mime_m.from_buffer(head)), str(desc_m.from_buffer(head))  # type: ignore[attr-defined]
    except Exception as exc:  # libmagic missing or confused: the other checks still run
        log.debug("libmagic failed: %s", exc)
        return "", ""


def extension(name: str) -> str:
    base = name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].strip().rstrip(".").lower()
    return base.rpartition(".")[2] if "." in base else ""


def _family(mime: str, desc: str = "") -> str:
    m = mime.lower()
    if m in _EXEC_MIME or (m.startswith("application/x-ms-") and "shortcut" in m):
        return "executable"
    if "ms-shortcut" in m or desc.startswith("MS Windows shortcut"):
        return "executable"
    if "msi installer" in desc.lower():
        return "executable"
    if m == "application/pdf":
        return "pdf"
    if m.startswith("image/"):
        return "image"
    if m in ("text/html", "application/xhtml+xml") or m == "image/svg+xml":
        return "html"
    if m in (
        "application/zip",
        "application/x-rar",
        "application/vnd.rar",
        "application/x-7z-compressed",
        "application/gzip",
        "application/x-gzip",
        "application/x-tar",
        "application/x-bzip2",
        "application/x-xz",
    ):
        return "archive"
    if (
        m.startswith("application/vnd.openxmlformats")
        or m.startswith("application/vnd.ms-")
        or m
        in (
            "application/msword",
            "application/x-ole-storage",
            "application/cdfv2",
            "text/rtf",
            "application/rtf",
            "application/encrypted",
        )
    ):
        return "office"
    if m.startswith("text/"):
        return "text"
    return "other"


_EXT_FAMILY = {
    **dict.fromkeys(("pdf",), "pdf"),
    **dict.fromkeys(["jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "webp", "ico", "heic"], "image"),
    **dict.fromkeys(OFFICE_EXT, "office"),
    **dict.fromkeys(("txt", "csv", "log"), "text"),
}


# -- the walk -----------------------------------------------------------------------------------------------------


class _Budget:
    """Limits shared by every archive level of one attachment."""

    def __init__(self) -> None:
        self.entries = 0
        self.inflated = 0


@dataclass
class _Item:
    """One file to judge: the attachment itself or a member of an archive inside it."""

    att: Attachment
    name: str
    declared: str
    data: bytes
    path: str  # how to reach it, for the reason: "docs.zip → inner.zip → a.exe"
    depth: int


class _Collector:
    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.detections: dict[str, Disposition] = {}
        self.encrypted: set[str] = set()

    def add(
        self,
        item: _Item,
        name: str,
        det: Disposition,
        score: float,
        reason: str,
        category: str,
        detail: str | None = None,
    ) -> None:
        sha = item.att.sha256
        if any(f.name == name and f.attachment == sha for f in self.findings):
            return  # one finding per check and attachment; the first member named is the evidence
        self.findings.append(
            Finding(
                name=name,
                detection=det,
                score=score,
                reason=reason,
                field="attachment",
                value=item.path[:500],
                attachment=sha,
                detail=detail[:500] if detail else None,
                category=category,
            )
        )
        prev = self.detections.get(sha)
        if prev is None or det.severity > prev.severity:
            self.detections[sha] = det
        if det is D.ENCRYPTED:
            self.encrypted.add(sha)


def _label(item: _Item) -> str:
    return f"The attachment {item.path}" if item.depth == 0 else f"The file {item.path} inside an attachment"


def _inspect(item: _Item, col: _Collector, budget: _Budget) -> None:
    ext = extension(item.name)
    if not item.data:
        _name_only(item, col)
        return
    mime, desc = true_type(item.data)
    fam = _family(mime, desc)
    what = desc.split(",")[0][:80] if desc else mime
    label = _label(item)

    if fam == "executable" and not (ext in ("docx", "xlsx", "pptx") and "java" in mime):
        col.add(item, "EXECUTABLE_ATTACHMENT", D.MALICIOUS, 8.0, f"{label} is a program ({what})", "Malware", mime)
    elif ext in EXECUTABLE_EXT:
        col.add(
            item,
            "EXECUTABLE_ATTACHMENT",
            D.MALICIOUS,
            8.0,
            f"{label} has the program extension .{ext}",
            "Malware",
            mime,
        )
    if ext in SCRIPT_EXT:
        col.add(
            item,
            "SCRIPT_ATTACHMENT",
            D.MALICIOUS,
            8.0,
            f"{label} is a .{ext} script that runs when opened",
            "Malware",
            mime,
        )
    if ext in DISK_IMAGE_EXT or mime == "application/x-iso9660-image":
        col.add(
            item,
            "DISK_IMAGE_ATTACHMENT",
            D.MALICIOUS,
            8.0,
            f"{label} is a disk image (.{ext or 'iso'}), a container used to smuggle programs past checks",
            "Malware",
            mime,
        )

    _check_mismatch(item, ext, mime, fam, what, col)

    if len(item.data) > MAX_DEEP_BYTES:
        return
    if fam == "html" or ext in HTML_EXT or (fam == "text" and b"<form" in item.data[:MAX_DEEP_BYTES].lower()):
        _check_html(item, col)
    if item.data.startswith(b"%PDF") or fam == "pdf":
        _check_pdf(item, col)
    is_zip = item.data[:4] == b"PK\x03\x04" or (item.data[:4] == b"PK\x05\x06")
    is_ole = item.data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    if is_ole:
        _check_ole_encryption(item, col)
    if is_ole or fam == "office" or ext in OFFICE_EXT or (is_zip and _looks_ooxml(item.data)):
        _check_macros(item, col)
    if is_zip:
        _walk_zip(item, col, budget)
    elif item.data[:2] == b"\x1f\x8b":
        _walk_gzip(item, col, budget)


def _check_mismatch(item: _Item, ext: str, mime: str, fam: str, what: str, col: _Collector) -> None:
    """A name or declared type hiding what the file is: `invoice.pdf` that is an archive, a web page or a program."""
    if not mime or fam not in ("archive", "html", "executable"):
        return
    claimed = _EXT_FAMILY.get(ext)
    declared = item.declared.lower()
    declared_fam = None if declared in _GENERIC_DECLARED else _family(declared)
    if fam == "archive" and claimed == "office":
        return  # OOXML is a zip
    if claimed and claimed != fam:
        col.add(
            item,
            "ATTACHMENT_TYPE_MISMATCH",
            D.SUSPICIOUS,
            3.0,
            f"{label_of(item)} is named .{ext} but is really {what}",
            "Attachment",
            mime,
        )
    elif (
        declared_fam
        and declared_fam not in (fam, "other", "text")
        and not (fam == "archive" and declared_fam == "office")
    ):
        col.add(
            item,
            "ATTACHMENT_TYPE_MISMATCH",
            D.SUSPICIOUS,
            3.0,
            f"{label_of(item)} is declared as {declared} but is really {what}",
            "Attachment",
            mime,
        )


def label_of(item: _Item) -> str:
    return _label(item)


def _check_html(item: _Item, col: _Collector) -> None:
    html = item.data[:MAX_DEEP_BYTES].decode("utf-8", "replace")
    ev = credential_form(html)
    label = _label(item)
    if ev is not None and ev.password:
        to = f" and sends it to {ev.actions[0]}" if ev.actions else ""
        hidden = " (the form is hidden in encoded script)" if ev.obfuscated else ""
        col.add(
            item,
            "HTML_CREDENTIAL_FORM",
            D.MALICIOUS,
            8.0,
            f"{label} is a web page asking for a password{to}{hidden}",
            "CredentialHarvester",
            ev.actions[0] if ev.actions else None,
        )
        return
    if ev is not None and ev.actions:
        col.add(
            item,
            "HTML_FORM_EXTERNAL_POST",
            D.SUSPICIOUS,
            5.0,
            f"{label} is a web page with a form that sends what is typed to {ev.actions[0]}",
            "CredentialHarvester",
            ev.actions[0],
        )
        return
    m = _REFRESH_RE.search(html[:2_000_000])
    if m:
        col.add(
            item,
            "HTML_ATTACHMENT_REDIRECT",
            D.SUSPICIOUS,
            4.0,
            f"{label} is a web page that sends the browser on to {m.group(1)[:200]}",
            "Link",
            m.group(1),
        )


_PDF_ENCRYPT_RE = re.compile(rb"/Encrypt\s*(?:\d+\s+\d+\s+R|<<)")
_PDF_ACTIVE_RE = re.compile(rb"/(?:JavaScript|JS|Launch|EmbeddedFile)\b")


def _check_pdf(item: _Item, col: _Collector) -> None:
    data = item.data[:MAX_DEEP_BYTES]
    label = _label(item)
    if _PDF_ENCRYPT_RE.search(data):
        col.add(
            item,
            "ENCRYPTED_PDF",
            D.ENCRYPTED,
            3.0,
            f"{label} is an encrypted PDF whose content cannot be inspected",
            "Encrypted",
        )
    m = _PDF_ACTIVE_RE.search(data)
    if m:
        col.add(
            item,
            "PDF_ACTIVE_CONTENT",
            D.SUSPICIOUS,
            3.0,
            f"{label} is a PDF with active content ({m.group(0).decode()})",
            "Attachment",
        )


def _looks_ooxml(data: bytes) -> bool:
    head = data[:4096]
    return b"[Content_Types].xml" in head or b"word/" in head or b"xl/" in head or b"ppt/" in head


def _check_ole_encryption(item: _Item, col: _Collector) -> None:
    try:
        import olefile
        from oletools import crypto

        ole = olefile.OleFileIO(io.BytesIO(item.data))
        try:
            encrypted = ole.exists("EncryptionInfo") or ole.exists("EncryptedPackage") or crypto.is_encrypted(ole)
        finally:
            ole.close()
    except Exception as exc:
        log.debug("OLE encryption check failed: %s", exc)
        return
    if encrypted:
        col.add(
            item,
            "ENCRYPTED_OFFICE",
            D.ENCRYPTED,
            3.0,
            f"{_label(item)} is a password-protected Office document whose content cannot be inspected",
            "Encrypted",
        )


def load_macro_scanner() -> Any:
    """olevba's `VBA_Parser`, imported on first need (~0.4 s); a queue worker calls this at start instead."""
    with warnings.catch_warnings():  # olevba's pyparsing grammar warns about deprecated names on import
        warnings.simplefilter("ignore")
        from oletools.olevba import VBA_Parser

    logging.getLogger("olevba").setLevel(logging.CRITICAL)
    return VBA_Parser


def _check_macros(item: _Item, col: _Collector) -> None:
    if len(item.data) > MAX_OLEVBA_BYTES:
        return
    try:
        parser = load_macro_scanner()(item.name or "attachment", data=item.data, relaxed=True)
        try:
            if not parser.detect_vba_macros():
                return
            results = parser.analyze_macros(show_decoded_strings=False, deobfuscate=False) or []
        finally:
            parser.close()
    except Exception as exc:
        log.debug("olevba failed on %s: %s", item.name, exc)
        return
    autoexec = sorted({str(kw) for kind, kw, _ in results if kind == "AutoExec"})
    suspicious = sorted({str(kw) for kind, kw, _ in results if kind == "Suspicious"})
    label = _label(item)
    if autoexec:
        extra = f" and uses {', '.join(suspicious[:5])}" if suspicious else ""
        col.add(
            item,
            "OFFICE_MACRO_AUTOEXEC",
            D.MALICIOUS,
            8.0,
            f"{label} has a macro that runs by itself when opened ({', '.join(autoexec[:5])}){extra}",
            "Malware",
            ", ".join(autoexec + suspicious),
        )
    elif suspicious:
        col.add(
            item,
            "OFFICE_MACRO_SUSPICIOUS",
            D.SUSPICIOUS,
            5.0,
            f"{label} has a macro that uses {', '.join(suspicious[:5])}",
            "Malware",
            ", ".join(suspicious),
        )
    else:
        col.add(item, "OFFICE_MACRO", D.SUSPICIOUS, 2.0, f"{label} contains macros", "Attachment")


# -- archives -----------------------------------------------------------------------------------------------------


def _zip_entry_count(data: bytes) -> int | None:
    """The entry count the end-of-central-directory record declares, read before zipfile builds its index."""
    pos = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if pos < 0 or pos + 22 > len(data):
        return None
    total = struct.unpack_from("<H", data, pos + 10)[0]
    if total == 0xFFFF:
        loc = data.rfind(b"PK\x06\x06", max(0, pos - 4096), pos)
        if loc >= 0 and loc + 40 <= len(data):
            return int(struct.unpack_from("<Q", data, loc + 32)[0])
    return int(total)


def _bomb(item: _Item, col: _Collector, why: str) -> None:
    col.add(
        item,
        "ZIP_BOMB",
        D.MALICIOUS,
        8.0,
        f"{_label(item)} is an archive bomb: {why}; it was not unpacked further",
        "Malware",
        why,
    )


def _read_bounded(fh: IO[bytes], limit: int, budget: _Budget) -> tuple[bytes, bool]:
    """Up to `limit` bytes of a member, counting every inflated byte against the budget; True when cut short."""
    chunks: list[bytes] = []
    kept = 0
    while True:
        chunk = fh.read(CHUNK)
        if not chunk:
            return b"".join(chunks), False
        budget.inflated += len(chunk)
        if kept < limit:
            chunks.append(chunk[: limit - kept])
            kept += min(len(chunk), limit - kept)
        if budget.inflated > MAX_INFLATED:
            return b"".join(chunks), True
        if kept >= limit:
            # keep inflating only to learn whether it is a bomb, within the budget, without keeping the bytes
            continue


def _walk_zip(item: _Item, col: _Collector, budget: _Budget) -> None:
    declared_count = _zip_entry_count(item.data)
    if declared_count is not None and budget.entries + declared_count > MAX_ENTRIES:
        _bomb(item, col, f"it declares {declared_count} entries (limit {MAX_ENTRIES})")
        return
    try:
        zf = zipfile.ZipFile(io.BytesIO(item.data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError, struct.error):
        return
    budget.entries += len(infos)
    if budget.entries > MAX_ENTRIES:
        _bomb(item, col, f"it holds {len(infos)} entries (limit {MAX_ENTRIES})")
        return
    declared_total = sum(i.file_size for i in infos)
    if declared_total > MAX_DECLARED:
        biggest = max(infos, key=lambda i: i.file_size)
        n = len(infos)
        _bomb(
            item,
            col,
            f"its {n} entr{'ies' if n > 1 else 'y'} claim {declared_total:,} bytes unpacked "
            f"(largest: {biggest.filename})",
        )
        return
    encrypted_names = []
    for info in infos:
        if info.is_dir():
            continue
        child_name = info.filename
        path = f"{item.path} → {child_name}"
        child_ext = extension(child_name)
        if info.flag_bits & 0x1:
            encrypted_names.append(child_name)
            probe = _Item(item.att, child_name, "", b"", path, item.depth + 1)
            if child_ext in EXECUTABLE_EXT or child_ext in SCRIPT_EXT or child_ext in DISK_IMAGE_EXT:
                col.add(
                    probe,
                    "EXECUTABLE_ATTACHMENT",
                    D.MALICIOUS,
                    8.0,
                    f"{_label(probe)} is an encrypted program (.{child_ext}): a password-protected archive "
                    "hiding a program is a way to deliver malware",
                    "Malware",
                )
            continue
        if (
            info.compress_size > 0
            and info.file_size >= RATIO_MIN_SIZE
            and info.file_size / info.compress_size > MAX_RATIO
        ):
            ratio = info.file_size // info.compress_size
            _bomb(item, col, f"{child_name} inflates {ratio}:1 to {info.file_size:,} bytes")
            return
        if item.depth + 1 > MAX_DEPTH:
            if child_ext in ARCHIVE_EXT:
                _bomb(item, col, f"archives are nested more than {MAX_DEPTH} deep")
                return
            data = b""
        else:
            try:
                with zf.open(info) as fh:
                    data, cut = _read_bounded(fh, MAX_MEMBER_READ, budget)
            except (
                zipfile.BadZipFile,
                OSError,
                ValueError,
                EOFError,
                NotImplementedError,
                RuntimeError,
                zlib.error,
                struct.error,
            ) as exc:
                log.debug("cannot read %s: %s", path, exc)
                continue
            if cut:
                _bomb(item, col, f"unpacking it passes {MAX_INFLATED:,} bytes")
                return
        child = _Item(item.att, child_name, "", data, path, item.depth + 1)
        if data:
            _inspect(child, col, budget)
        else:
            _name_only(child, col)
    if encrypted_names:
        col.add(
            item,
            "ENCRYPTED_ARCHIVE",
            D.ENCRYPTED,
            3.0,
            f"{_label(item)} is a password-protected archive ({len(encrypted_names)} encrypted "
            f"file{'s' if len(encrypted_names) > 1 else ''}, e.g. {encrypted_names[0]}) whose content cannot be "
            "inspected",
            "Encrypted",
            ", ".join(encrypted_names[:10]),
        )


def _shallow(item: _Item, col: _Collector) -> None:
    """An attachment past the first MAX_ATTACHMENTS: its name and true type only (archives and documents are not
    opened), so a program cannot hide behind fifty harmless files."""
    _name_only(item, col)
    if not item.data or any(f.attachment == item.att.sha256 for f in col.findings):
        return
    mime, desc = true_type(item.data[:CHUNK])
    if _family(mime, desc) == "executable":
        what = desc.split(",")[0][:80] if desc else mime
        col.add(
            item, "EXECUTABLE_ATTACHMENT", D.MALICIOUS, 8.0, f"{_label(item)} is a program ({what})", "Malware", mime
        )


def _name_only(item: _Item, col: _Collector) -> None:
    ext = extension(item.name)
    if ext in EXECUTABLE_EXT:
        col.add(
            item,
            "EXECUTABLE_ATTACHMENT",
            D.MALICIOUS,
            8.0,
            f"{_label(item)} has the program extension .{ext}",
            "Malware",
        )
    elif ext in SCRIPT_EXT:
        col.add(
            item,
            "SCRIPT_ATTACHMENT",
            D.MALICIOUS,
            8.0,
            f"{_label(item)} is a .{ext} script that runs when opened",
            "Malware",
        )


def _walk_gzip(item: _Item, col: _Collector, budget: _Budget) -> None:
    if item.depth + 1 > MAX_DEPTH:
        _bomb(item, col, f"archives are nested more than {MAX_DEPTH} deep")
        return
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    src = memoryview(item.data)
    try:
        pos = 0
        while pos < len(src) and not d.eof:
            piece = d.decompress(src[pos : pos + 65536], CHUNK)
            pos += 65536
            while True:
                budget.inflated += len(piece)
                if len(out) < MAX_MEMBER_READ:
                    out += piece[: MAX_MEMBER_READ - len(out)]
                if budget.inflated > MAX_INFLATED:
                    _bomb(item, col, f"unpacking it passes {MAX_INFLATED:,} bytes")
                    return
                if not d.unconsumed_tail:
                    break
                piece = d.decompress(d.unconsumed_tail, CHUNK)
    except zlib.error:
        if not out:
            return
    name = item.name[:-3] if item.name.lower().endswith(".gz") else item.name.rsplit(".", 1)[0]
    if item.name.lower().endswith(".tgz"):
        name = item.name[:-4] + ".tar"
    child = _Item(item.att, name, "", bytes(out), f"{item.path} → {name}", item.depth + 1)
    _inspect(child, col, budget)


def analyze_attachments(parsed: ParsedMessage) -> AttachmentOutcome:
    """Findings per attachment, the worst disposition per attachment sha256, and which ones are encrypted."""
    col = _Collector()
    for index, att in enumerate(parsed.attachments):
        if att.content_type == "message/rfc822":
            continue  # a forwarded message: its own parts are already attachments of this one
        item = _Item(att, att.name, att.content_type, att.content, att.name or f"({att.content_type})", 0)
        if index >= MAX_ATTACHMENTS:
            _shallow(item, col)
            continue
        try:
            _inspect(item, col, _Budget())
        except (MemoryError, RecursionError) as exc:
            _bomb(item, col, f"inspecting it exhausted a resource ({type(exc).__name__})")
    return AttachmentOutcome(
        findings=tuple(col.findings),
        detections={sha: d.value for sha, d in col.detections.items()},
        encrypted=frozenset(col.encrypted),
    )
