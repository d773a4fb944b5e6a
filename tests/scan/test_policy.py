"""Allow and block policies, pure: which policy applies to which message, and what the verdict makes of it."""

from __future__ import annotations

from mailsec.mime import parse_message
from mailsec.model import Disposition, Envelope, Validation
from mailsec.scan import scan_message
from mailsec.scan.policy import AllowPolicy, BlockPolicy, Policy, evaluate_policy, pattern_matches
from support import make_eml

EXE = ("tool.exe", "application/octet-stream", b"MZ\x90\x00" + b"\x00" * 200)
PASS = Validation(spf="pass", dkim="pass", dmarc="pass")


def parsed(sender: str = "Alice <alice@sender.example>", to: str = "bob@corp.example", **kw: object):  # type: ignore[no-untyped-def]
    return parse_message(make_eml(sender=sender, to=to, **kw))  # type: ignore[arg-type]


def test_pattern_kinds() -> None:
    a = ["Alice@Mail.Sender.example"]
    assert pattern_matches("alice@mail.sender.example", "EMAIL", False, a, [])
    assert not pattern_matches("bob@mail.sender.example", "EMAIL", False, a, [])
    assert pattern_matches("sender.example", "DOMAIN", False, a, [])  # parent domain covers subdomains
    assert not pattern_matches("der.example", "DOMAIN", False, a, [])  # but not a suffix of a label
    assert pattern_matches("192.0.2.0/24", "IP", False, a, ["192.0.2.77"])
    assert not pattern_matches("192.0.2.0/24", "IP", False, a, ["198.51.100.1"])
    assert pattern_matches("2001:db8::/32", "IP", False, [], ["2001:db8::1"])
    # Regexes must match the whole value: `sender\.example` is not `sender.example.evil.example`.
    assert pattern_matches(r".*\.sender\.example", "DOMAIN", True, a, [])
    assert not pattern_matches(r"sender\.example", "DOMAIN", True, ["x@sender.example.evil.example"], [])
    assert not pattern_matches("([", "EMAIL", True, a, [])  # a broken regex matches nothing, never raises
    # UNKNOWN (legacy) entries are read by their shape.
    assert pattern_matches("alice@mail.sender.example", "UNKNOWN", False, a, [])
    assert pattern_matches("sender.example", "UNKNOWN", False, a, [])
    assert pattern_matches("192.0.2.1", "UNKNOWN", False, [], ["192.0.2.1"])
    assert not pattern_matches("x" * 50, "EMAIL", True, ["a" * 10_000 + "@x.example"], [])  # huge input skipped


def test_block_matches_from_envelope_sender_and_ip() -> None:
    p = parsed()
    block = Policy(block=(BlockPolicy("sender.example", "DOMAIN"),))
    out = evaluate_policy(p, Envelope(), block)
    assert out.blocked and out.properties["blocklisted_pattern"] == "sender.example"
    out = evaluate_policy(
        p, Envelope(mail_from="bounce@other.example"), Policy(block=(BlockPolicy("other.example", "DOMAIN"),))
    )
    assert out.blocked
    ip = Policy(block=(BlockPolicy("203.0.113.0/24", "IP"),))
    assert evaluate_policy(p, Envelope(client_ip="203.0.113.9"), ip).blocked
    assert not evaluate_policy(p, Envelope(client_ip="198.51.100.9"), ip).blocked
    assert evaluate_policy(p, Envelope(), Policy()) == evaluate_policy(p, Envelope(), Policy())


def test_verify_sender_needs_authentication() -> None:
    p = parsed()
    allow = Policy(allow=(AllowPolicy("alice@sender.example", "EMAIL", is_trusted_sender=True, verify_sender=True),))
    unverified = evaluate_policy(p, Envelope(), allow, Validation())
    assert not unverified.trusted_sender
    assert any(getattr(f, "name", "") == "ALLOW_POLICY_UNVERIFIED" for f in unverified.findings)
    assert evaluate_policy(p, Envelope(), allow, PASS).trusted_sender
    assert not evaluate_policy(p, Envelope(), allow, Validation(spf="pass", dmarc="fail")).trusted_sender
    # An IP pattern cannot be spoofed through headers: no authentication needed.
    by_ip = Policy(allow=(AllowPolicy("192.0.2.1", "IP", is_trusted_sender=True, verify_sender=True),))
    assert evaluate_policy(p, Envelope(client_ip="192.0.2.1"), by_ip).trusted_sender


def test_exempt_recipient_needs_every_recipient() -> None:
    allow = Policy(allow=(AllowPolicy("soc@corp.example", "EMAIL", is_exempt_recipient=True, verify_sender=False),))
    one = evaluate_policy(parsed(to="soc@corp.example"), Envelope(), allow)
    assert one.trusted_sender and one.properties["allowlisted_pattern_type"] == "allowed_recipient"
    assert not evaluate_policy(parsed(to="soc@corp.example, ceo@corp.example"), Envelope(), allow).trusted_sender
    env = Envelope(rcpt_to=("soc@corp.example",))  # the envelope, not the header, names the recipients
    assert evaluate_policy(parsed(to="everyone@corp.example"), env, allow).trusted_sender


def test_verdicts_without_the_content_model() -> None:
    exe = parsed(attachments=[EXE])
    assert scan_message(exe, Envelope(), model=False).disposition is Disposition.MALICIOUS
    acceptable = Policy(
        allow=(AllowPolicy("sender.example", "DOMAIN", is_acceptable_sender=True, verify_sender=False),)
    )
    assert scan_message(exe, Envelope(), acceptable, model=False).disposition is Disposition.MALICIOUS
    trusted = Policy(allow=(AllowPolicy("sender.example", "DOMAIN", is_trusted_sender=True, verify_sender=False),))
    v = scan_message(exe, Envelope(), trusted, model=False)
    assert v.disposition is Disposition.NONE and v.properties["allowlisted_pattern_type"] == "allowed_sender"
    bulk = parsed(
        headers={"List-Unsubscribe": "<mailto:u@sender.example>", "Precedence": "bulk", "List-Id": "l.sender.example"}
    )
    assert scan_message(bulk, Envelope(), model=False).disposition is Disposition.BULK
    v = scan_message(bulk, Envelope(), acceptable, model=False)
    assert v.disposition is Disposition.NONE and v.properties["allowlisted_pattern_type"] == "acceptable_sender"
    # A block wins over an allow for the same sender.
    both = Policy(allow=trusted.allow, block=(BlockPolicy("alice@sender.example", "EMAIL"),))
    v = scan_message(parsed(), Envelope(), both, model=False)
    assert v.disposition is Disposition.MALICIOUS and "Blocklisted" in v.threat_categories
