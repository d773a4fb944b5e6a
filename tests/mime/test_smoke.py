from mailsec.mime import parse_message
from support import make_eml


def test_parses_a_simple_message() -> None:
    raw = make_eml(subject="Quarterly =?utf-8?q?r=C3=A9sum=C3=A9?=", attachments=[("a.txt", "text/plain", b"x")])
    parsed = parse_message(raw)
    assert parsed.raw == raw
    assert parsed.from_ is not None and parsed.from_.email == "alice@sender.example"
    assert [a.name for a in parsed.attachments] == ["a.txt"]
