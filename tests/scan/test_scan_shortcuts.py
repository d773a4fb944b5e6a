"""The scan's shortcuts must say exactly what the long way says: the classifier without the vectorizer, the DNS
query built and the negative reply read without dnspython, DKIM reading the body only when it needs it."""

from __future__ import annotations

import socket
import struct

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import pytest
from dns_zone import Zones, dns_server

from mailsec.mime import parse_message
from mailsec.scan.auth import _header_block
from mailsec.scan.content import VECTORIZER, shipped_model
from mailsec.scan.features import extract_text, model_document, model_tokens, words
from mailsec.scan.resolvers import DnspythonResolver, _Query, _quick_negative
from support import make_eml


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Verify your account now", "Your mailbox will be suspended on 12 Aug at 10:30pm GMT: www.evil.example/x"),
        ("", ""),
        ("Newsletter", "Cheap offers for you, write to deals@cheap.example. " * 40),
        ("Ünïcödé çà", "Grüße aus München, 3 Tage Angebot; ответьте сегодня"),
    ],
)
def test_classifier_on_tokens_is_bit_for_bit_the_vectorizer(subject: str, body: str) -> None:
    model = shipped_model()
    assert model is not None and model.meta["vectorizer"] == VECTORIZER  # else the shortcut is not taken
    raw = make_eml(subject=subject, body=body, attachments=[("a.pdf", "application/pdf", b"%PDF")])
    mt = extract_text(parse_message(raw))
    document = model_document(mt)
    assert model_tokens(mt) == words(document)
    assert model.probabilities_of_tokens(model_tokens(mt)) == model.probabilities(document)


def test_query_wire_is_what_dnspython_renders() -> None:
    r = dns.resolver.Resolver(configure=False)
    for name in ("Example.COM", "_dmarc.a.b.c", "x\\.y.example", "bücher.de", "a" * 63 + ".com"):
        qname = dns.name.from_text(name)
        for rdtype in (dns.rdatatype.TXT, dns.rdatatype.A, dns.rdatatype.MX, dns.rdatatype.PTR):
            query = _Query(r, qname, rdtype)
            reference = dns.message.make_query(qname, rdtype, dns.rdataclass.IN)
            reference.id = query.id
            assert query.wire == reference.to_wire() == query.message.to_wire()


def _negative(rcode: int, authority: bytes, ns: int = 1, tail: bytes = b"") -> bytes:
    question = b"\x03foo\x07example\x00" + struct.pack("!HH", 16, 1)
    return struct.pack("!HHHHHH", 7, 0x8180 | rcode, 1, 0, ns, 0) + question + authority + tail


SOA_RDATA = b"\x02ns\xc0\x10\x02hm\xc0\x10" + struct.pack("!5I", *range(5))
SOA = b"\xc0\x10" + struct.pack("!HHIH", 6, 1, 300, len(SOA_RDATA)) + SOA_RDATA


def test_quick_negative_reads_plain_replies_and_leaves_the_rest_to_dnspython() -> None:
    qname, qtail = b"\x03FOO\x07example\x00", struct.pack("!HH", 16, 1)
    good = _negative(3, SOA)
    quick = _quick_negative(good, 7, qname, qtail)
    full = dns.message.from_wire(good)
    assert quick is not None and quick.rcode == full.rcode() == 3
    assert quick.soa == (full.authority[0].ttl, full.authority[0][0].minimum) == (300, 4)
    assert _quick_negative(_negative(0, b"", ns=0), 7, qname, qtail) is not None
    refused = [
        _negative(3, SOA)[:-1],  # short
        _negative(3, SOA, tail=b"x"),  # trailing junk
        _negative(3, SOA.replace(b"\xc0\x10", b"\xc0\x40", 1)),  # pointer forwards
        _negative(2, SOA),  # SERVFAIL
    ]
    for wire in refused:
        assert _quick_negative(wire, 7, qname, qtail) is None
    assert _quick_negative(good, 8, qname, qtail) is None  # another query's id
    assert _quick_negative(good, 7, b"\x03bar\x07example\x00", qtail) is None  # another name


def test_resolver_answers_through_the_shortcut_as_before() -> None:
    zones = Zones()
    zones.a("test", "127.0.0.1")
    zones.txt("t.test", "v=spf1 -all")
    zones.mx("m.test", 10, "mx.test")
    with dns_server(zones) as (host, port):
        resolver = DnspythonResolver([host], port=port, timeout=2.0)
        assert resolver.txt("t.test") == ["v=spf1 -all"]
        assert resolver.a("test") == ["127.0.0.1"] and resolver.a("t.test") == []
        assert resolver.mx("m.test") == [(10, "mx.test")] and resolver.txt("nx.test") == []
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        query = _Query(resolver._resolver, dns.name.from_text("nx.test"), dns.rdatatype.TXT)
        sock.sendto(query.wire, (host, port))
        reply = sock.recvfrom(65535)[0]
        sock.close()
        quick = _quick_negative(reply, query.id, query.name_wire or b"", query.tail)
        assert quick is not None and resolver._soa_ttl(quick) == resolver._soa_ttl(dns.message.from_wire(reply))


def test_header_block_ends_where_dkimpy_sees_the_first_empty_line() -> None:
    assert _header_block(b"A: 1\r\nB: 2\r\n\r\nbody\n\nmore") == len(b"A: 1\r\nB: 2\r\n")
    assert _header_block(b"A: 1\nB: 2\n\nbody") == len(b"A: 1\nB: 2\n")
    assert _header_block(b"A: 1\r\r\nB: 2\n\r\nbody") == len(b"A: 1\r\r\nB: 2\n")
    assert _header_block(b"A: 1\nB: 2\n") == 0 and _header_block(b"\nA: 1\n\nbody") == len(b"\nA: 1\n")


def test_header_index_answers_as_a_walk_of_the_headers_does() -> None:
    parsed = parse_message(make_eml(headers={"X-Mailer": "Mailchimp", "Received": "from a", "precedence": "bulk"}))
    for name in ("x-mailer", "RECEIVED", "Precedence", "From", "Missing"):
        walked = [v for k, v in parsed.headers if k.lower() == name.lower()]
        assert parsed.header_all(name) == walked and parsed.header(name) == (walked[0] if walked else None)
    assert parsed.header_names() == {k.lower() for k, _ in parsed.headers}
    parsed.header_all("Received").append("not stored")  # a caller's copy, not the index
    assert parsed.header_all("Received") == ["from a"]
    parsed.headers = [("X-Mailer", "other")]  # a replaced header list is indexed anew
    assert parsed.header("x-mailer") == "other" and parsed.header("Received") is None


def test_email_masking_matches_the_pattern_on_random_text() -> None:
    import random

    from mailsec.scan.features import _EMAIL_RE, _mask_emails

    rnd = random.Random(7)
    alphabet = "ab1_.+-@@ é\n٣ⅷ"
    samples = ["", "@", "a@b.c", "x a@b.c, d.e+f@g-h.i.j k@l @m.n o@p"]
    samples += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 16))) for _ in range(20000)]
    for text in samples:
        assert _mask_emails(text) == _EMAIL_RE.sub(" zzemail ", text), text


def test_url_masking_matches_the_pattern_on_random_lower_case_text() -> None:
    import random

    from mailsec.scan.features import _URL_RE, _mask_urls

    rnd = random.Random(11)
    pieces = ["http", "https://", "http\u017f://", "www.", "www", "://", "a", "1", " ", "\n", ".", "é", "_", "w", "h"]
    samples = ["", "see http://a.example/x and www.b.example, xhttp://no https:// end"]
    samples += ["".join(rnd.choice([*pieces, "/"]) for _ in range(rnd.randint(1, 8))) for _ in range(20000)]
    for text in samples:
        assert _mask_urls(text) == _URL_RE.sub(" zzurl ", text), text
