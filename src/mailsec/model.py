"""Domain types shared by every layer. Imports nothing of ours, so any module may depend on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Disposition(StrEnum):
    MALICIOUS_BEC = "MALICIOUS-BEC"
    MALICIOUS = "MALICIOUS"
    SUSPICIOUS = "SUSPICIOUS"
    SPOOF = "SPOOF"
    SPAM = "SPAM"
    BULK = "BULK"
    ENCRYPTED = "ENCRYPTED"
    EXTERNAL = "EXTERNAL"
    UNKNOWN = "UNKNOWN"
    NONE = "NONE"

    @property
    def severity(self) -> int:
        """Higher is worse; the order of the design: MALICIOUS-BEC > MALICIOUS > ... > NONE."""
        return _SEVERITY.get(self, 0)


_SEVERITY = {
    Disposition.MALICIOUS_BEC: 7,
    Disposition.MALICIOUS: 6,
    Disposition.SUSPICIOUS: 5,
    Disposition.SPOOF: 4,
    Disposition.SPAM: 3,
    Disposition.BULK: 2,
    Disposition.ENCRYPTED: 1,
    Disposition.EXTERNAL: 1,
    Disposition.UNKNOWN: 1,
    Disposition.NONE: 0,
}

SEARCHABLE_DISPOSITIONS = ("MALICIOUS", "SUSPICIOUS", "SPOOF", "SPAM", "BULK", "NONE")


class DeliveryMode(StrEnum):
    DIRECT = "DIRECT"
    BCC = "BCC"
    JOURNAL = "JOURNAL"
    REVIEW_SUBMISSION = "REVIEW_SUBMISSION"
    DMARC_UNVERIFIED = "DMARC_UNVERIFIED"
    DMARC_FAILURE_REPORT = "DMARC_FAILURE_REPORT"
    DMARC_AGGREGATE_REPORT = "DMARC_AGGREGATE_REPORT"
    THREAT_INTEL_SUBMISSION = "THREAT_INTEL_SUBMISSION"
    SIMULATION_SUBMISSION = "SIMULATION_SUBMISSION"
    API = "API"
    RETRO_SCAN = "RETRO_SCAN"


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"
    MOVED = "moved"
    QUARANTINED = "quarantined"
    REJECTED = "rejected"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    QUEUED = "queued"
    MOVE_FAILED = "move_failed"


class RecipientState(StrEnum):
    """Where one recipient of a message stands. `sending` is internal: written (committed) before the next hop is
    contacted and replaced by its reply, so a rerun that finds it knows a hand-off was cut off."""

    QUEUED = "queued"
    SENDING = "sending"
    DEFERRED = "deferred"
    QUARANTINED = "quarantined"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    REJECTED = "rejected"
    MOVED = "moved"
    MOVE_FAILED = "move_failed"

    @property
    def final(self) -> bool:
        """Nothing more to hand off: the next hop answered for good (a moved message was delivered first)."""
        return self in _FINAL_RECIPIENT_STATES


_FINAL_RECIPIENT_STATES = frozenset(
    {
        RecipientState.DELIVERED,
        RecipientState.BOUNCED,
        RecipientState.REJECTED,
        RecipientState.MOVED,
        RecipientState.MOVE_FAILED,
    }
)


class Destination(StrEnum):
    INBOX = "Inbox"
    JUNK = "JunkEmail"
    DELETED = "DeletedItems"
    RECOVERABLE_DELETIONS = "RecoverableItemsDeletions"
    RECOVERABLE_PURGES = "RecoverableItemsPurges"


class Operation(StrEnum):
    MOVE = "MOVE"
    RELEASE = "RELEASE"
    RECLASSIFY = "RECLASSIFY"
    SUBMISSION = "SUBMISSION"
    QUARANTINE_RELEASE = "QUARANTINE_RELEASE"
    PREVIEW = "PREVIEW"


class MessageAction(StrEnum):
    """The `message_action` search filter and the operations it stands for."""

    PREVIEW = "PREVIEW"
    QUARANTINE_RELEASED = "QUARANTINE_RELEASED"
    MOVED = "MOVED"
    SUBMITTED = "SUBMITTED"


MESSAGE_ACTION_OPERATIONS: dict[MessageAction, tuple[Operation, ...]] = {
    MessageAction.PREVIEW: (Operation.PREVIEW,),
    MessageAction.QUARANTINE_RELEASED: (Operation.QUARANTINE_RELEASE, Operation.RELEASE),
    MessageAction.MOVED: (Operation.MOVE,),
    MessageAction.SUBMITTED: (Operation.SUBMISSION, Operation.RECLASSIFY),
}


class TraceDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass(frozen=True)
class Envelope:
    """What the SMTP session (or the importer, standing in for one) says about a message."""

    mail_from: str = ""
    rcpt_to: tuple[str, ...] = ()
    client_ip: str | None = None
    helo: str | None = None
    tls: bool = False
    received_header: str = ""  # the Received line the gateway wrote for this message (value only, unfolded)
    received_us: int = 0  # when the gateway accepted it (microseconds since the epoch); 0: not through the gateway


@dataclass(frozen=True)
class Address:
    name: str
    email: str

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2].lower() if "@" in self.email else ""


@dataclass(frozen=True)
class Link:
    href: str
    text: str = ""
    source: str = "html"


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    size: int
    md5: str
    sha1: str
    sha256: str
    content: bytes = field(default=b"", repr=False, compare=False)
    content_id: str | None = None
    disposition: str | None = None


@dataclass(frozen=True)
class HtmlView:
    """What the scan reads of `source` (an HTML body): its visible text and tag names, taken by the parse that found
    its links so that the body is parsed once. Valid only while `source` is still the message's `html_body`."""

    source: str
    text: str
    tags: tuple[str, ...]


@dataclass
class ParsedMessage:
    """A message as every later stage reads it. `raw` is kept byte for byte."""

    raw: bytes
    headers: list[tuple[str, str]]
    from_: Address | None
    to: list[Address]
    cc: list[Address]
    reply_to: list[Address]
    subject: str
    message_id: str
    sent_at: datetime | None
    text_body: str
    html_body: str
    links: list[Link]
    attachments: list[Attachment]
    received: list[str]
    smtp_helo_server_ip: str | None
    smtp_previous_hop_ip: str | None
    x_originating_ip: str | None
    defects: list[str]
    # What the parser could not read, or read only by flattening a hostile structure: such a message is never clean
    unread: list[str] = field(default_factory=list)
    inline_parts: dict[str, tuple[str, bytes]] = field(default_factory=dict, repr=False)
    html_view: HtmlView | None = field(default=None, repr=False, compare=False)
    _header_index: tuple[list[tuple[str, str]], dict[str, list[str]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def _headers_by_name(self) -> dict[str, list[str]]:
        """Values by lower-cased name, built on the first lookup (a scan asks a dozen names of a message that may
        carry a hundred headers) and again if `headers` is replaced."""
        cached = self._header_index
        if cached is not None and cached[0] is self.headers:
            return cached[1]
        index: dict[str, list[str]] = {}
        for k, v in self.headers:
            index.setdefault(k.lower(), []).append(v)
        self._header_index = (self.headers, index)
        return index

    def header(self, name: str) -> str | None:
        values = self._headers_by_name().get(name.lower())
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return list(self._headers_by_name().get(name.lower(), ()))

    def header_names(self) -> set[str]:
        """The lower-cased names of all headers."""
        return set(self._headers_by_name())


@dataclass(frozen=True)
class Finding:
    """One named check that fired, with its score and a sentence an analyst can read (an rspamd symbol)."""

    name: str
    detection: Disposition
    score: float
    reason: str
    field: str | None = None
    portion: str | None = None
    value: str | None = None
    attachment: str | None = None
    detail: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class Validation:
    spf: str = "none"
    dkim: str = "none"
    dmarc: str = "none"
    comment: str | None = None


@dataclass(frozen=True)
class SenderInfo:
    ip: str | None = None
    pld: str | None = None
    as_number: int | None = None
    as_name: str | None = None
    geo: str | None = None


@dataclass(frozen=True)
class Verdict:
    disposition: Disposition = Disposition.NONE
    findings: tuple[Finding, ...] = ()
    threat_categories: tuple[str, ...] = ()
    detection_reasons: tuple[str, ...] = ()
    validation: Validation = field(default_factory=Validation)
    sender_info: SenderInfo = field(default_factory=SenderInfo)
    properties: dict[str, object] = field(default_factory=dict)
    edf_hash: str | None = None
    htmltext_structure_hash: str | None = None
    attachment_detections: dict[str, str] = field(default_factory=dict)
    encrypted_attachments: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TraceLine:
    direction: TraceDirection
    message: str
    logged_at: datetime


@dataclass(frozen=True)
class ActionEntry:
    operation: Operation
    completed_at: datetime
    status: str
    folder: str | None = None
    requested_by: str | None = None


@dataclass(frozen=True)
class Reclassification:
    """An analyst's (TEAM) or a user's escalated verdict on one stored message: what learning consumes.

    `actions.reclassify` records it (submission + action log + new final disposition) and hands it to
    `mailsec.learn.on_reclassified`, which remembers the campaign and the sender and may adapt the content model."""

    account_id: str
    message_pk: int
    message_id: str
    submission_id: str
    original: Disposition | None
    requested: Disposition
    requested_by: str
    at: datetime


THREAT_CATEGORIES: dict[str, tuple[int, str]] = {
    "CredentialHarvester": (1, "Tries to collect credentials: a login form, a fake sign-in page or link"),
    "Malware": (2, "Carries or links to malicious software"),
    "BEC": (3, "Business e-mail compromise: impersonates a trusted person to divert money or data"),
    "Spoof": (4, "Claims a sender identity its authentication does not support"),
    "Link": (5, "Links whose target is deceptive or dangerous"),
    "BrandImpersonation": (6, "Poses as a well-known brand"),
    "IPReputation": (7, "Sent from an address listed as a source of abuse"),
    "ContentSpam": (8, "Text typical of unsolicited mail"),
    "Bulk": (9, "Graymail: newsletters and marketing"),
    "Encrypted": (10, "Holds encrypted content that could not be inspected"),
    "Attachment": (11, "Attachments whose type or content is dangerous"),
    "Blocklisted": (12, "Matches an account block policy"),
    "Phishing": (13, "Text typical of phishing"),
}
"""The fixed vocabulary of `threat_categories`: name → (id, description)."""
