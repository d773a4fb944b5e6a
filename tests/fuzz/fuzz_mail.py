"""Coverage-guided fuzzing of the mail path with atheris (libFuzzer for Python): bytes in, `parse_message` then
`scan_message` (every analyzer, the shipped content model). Both promise never to raise; an analyzer that fails is
caught inside the scan as ANALYZER_ERROR, which this harness also counts as a crash, so a bug cannot hide there.

Run: `python tests/fuzz/fuzz_mail.py -max_total_time=60 CORPUS_DIR tests/fuzz/seeds` (libFuzzer's flags; new
inputs that reach new code are written to CORPUS_DIR). tests/fuzz/test_fuzz_mail.py runs it for a bounded time."""

from __future__ import annotations

import logging
import sys

import atheris

with atheris.instrument_imports(include=["mailsec"]):
    from mailsec.mime import parse_message
    from mailsec.model import Envelope
    from mailsec.scan import scan_message

ENVELOPE = Envelope(mail_from="billing@vendor.example", rcpt_to=("ap@corp.example",), client_ip="192.0.2.7")


class AnalyzerFailed(Exception):
    """An analyzer raised on this input (scan_message turned it into an ANALYZER_ERROR finding)."""


def test_one_input(data: bytes) -> None:
    verdict = scan_message(parse_message(data), ENVELOPE)
    failed = [f.detail for f in verdict.findings if f.name == "ANALYZER_ERROR"]
    if failed:
        raise AnalyzerFailed(failed[0])


def main() -> None:
    logging.disable(logging.CRITICAL)  # the scan logs every analyzer failure; the harness reports them itself
    scan_message(parse_message(b"From: a@b.example\r\n\r\nwarm-up\r\n"), ENVELOPE)  # lazy imports, the model
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
