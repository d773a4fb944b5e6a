"""`StoredMessage` is the typed read model of a stored message: what `message_values` encodes, `stored_message`
decodes to the same values, on both databases; a document an older version wrote reads as defaults."""

from __future__ import annotations

from datetime import UTC, datetime

from mailsec.mime import parse_message
from mailsec.model import (
    DeliveryMode,
    Disposition,
    Envelope,
    Finding,
    SenderInfo,
    Validation,
    Verdict,
)
from mailsec.services import Services
from mailsec.store.messages import message_values, stored_message
from mailsec.store.records import MessageData, MessageRecord
from support import make_eml

VERDICT = Verdict(
    disposition=Disposition.SUSPICIOUS,
    findings=(
        Finding("DMARC_FAIL", Disposition.SPOOF, 4.5, "DMARC failed", field="From", value="x@y.example"),
        Finding("LINK_MISMATCH", Disposition.SUSPICIOUS, 2.0, "text and target differ", detail="a.example"),
    ),
    threat_categories=("CredentialHarvester",),
    detection_reasons=("DMARC failed", "text and target differ"),
    validation=Validation(spf="pass", dkim="fail", dmarc="fail", comment="spf=pass dkim=fail"),
    sender_info=SenderInfo(ip="192.0.2.7", pld="sender.example", as_number=64500, as_name="EXAMPLE-AS", geo="NL"),
    properties={"blocklisted_pattern": "sender.example"},
    edf_hash="e" * 64,
    htmltext_structure_hash="h" * 64,
    attachment_detections={"invoice.html": "MALICIOUS"},
    encrypted_attachments=frozenset({"locked.zip"}),
)


def _record(account_id: str) -> MessageRecord:
    raw = make_eml(subject="typed read model", to="ann@corp.example")
    return MessageRecord(
        account_id=account_id,
        postfix_id="4TypedRead0001",
        scanned_at=datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC),
        raw_sha256="a" * 64,
        raw_size=len(raw),
        delivery_mode=DeliveryMode.BCC,
        parsed=parse_message(raw),
        envelope=Envelope(
            mail_from="bounce@sender.example", rcpt_to=("ann@corp.example", "bob@corp.example"),
            client_ip="192.0.2.7", helo="mx.sender.example", tls=True,
            received_header="from mx.sender.example by gw", received_us=1_772_366_400_000_000,
        ),
        verdict=VERDICT,
        delivery_status="delivered",
    )  # fmt: skip


def test_a_saved_message_reads_back_as_typed_fields(services: Services) -> None:
    account = services.accounts.create_account("Typed").id
    rec = _record(account)
    saved, _ = services.messages.save_stored(rec)
    read = services.messages.get_by_pk(saved.pk)
    assert read == saved  # what the save hands back is what a later read decodes
    assert read.verdict == VERDICT
    assert read.final_disposition is Disposition.SUSPICIOUS and read.delivery_mode is DeliveryMode.BCC
    assert read.scanned_at == rec.scanned_at and read.id == rec.investigate_id and read.alert_id == rec.alert_id
    assert read.envelope_from == "bounce@sender.example" and read.raw_size == rec.raw_size
    assert read.internet_message_id == rec.parsed.message_id and read.subject == "typed read model"
    assert read.delivery_status == "delivered" and not read.is_quarantined
    assert read.data == rec.data()
    assert read.envelope_to == ("ann@corp.example", "bob@corp.example")
    assert read.data.tls and read.data.received_us == 1_772_366_400_000_000
    assert read.detection_reasons == VERDICT.detection_reasons


def test_documents_of_an_older_version_read_as_defaults() -> None:
    rec = _record("acct")
    row = {**message_values(rec), "pk": 7, "data_json": "{}", "verdict_json": '{"findings": [{"name": "X"}]}'}
    row["final_disposition"] = "NOT-A-DISPOSITION"
    m = stored_message(row)
    assert m.final_disposition is Disposition.UNKNOWN
    assert m.data == MessageData()
    assert m.verdict.findings == (Finding("X", Disposition.UNKNOWN, 0.0, ""),)
    assert m.verdict.validation == Validation() and m.verdict.sender_info == SenderInfo()
