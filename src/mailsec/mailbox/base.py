"""The one protocol every mailbox backend speaks, and the errors it raises. Folder meanings are the Investigate
API's destinations (`model.Destination`); each backend maps them to its own folders or labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mailsec.model import Destination


class MailboxError(Exception):
    """The mailbox server could not be reached, or failed the request: worth retrying later."""


class MailboxAuthError(MailboxError):
    """The backend's admin credentials were refused: retrying will not help until they are fixed."""


@dataclass(frozen=True)
class MailRef:
    """One copy of a message in one mailbox: the backend's folder (or label) and its own key for the item."""

    recipient: str
    folder: str
    key: str
    destination: Destination | None = None  # what the folder means, when it is one of ours


@dataclass(frozen=True)
class Wanted:
    """One message to find in a mailbox: its Message-ID, mailsec's X-MailSec-Delivery-Id, and the folder mailsec
    last put it in (looked at first)."""

    message_id: str
    delivery_id: str | None = None
    hint: Destination | None = None


class MailboxBackend(Protocol):
    def locate(
        self, recipient: str, message_id: str, delivery_id: str | None = None, hint: Destination | None = None
    ) -> list[MailRef]:
        """Every copy of the message in the recipient's mailbox, in any folder (hidden ones too), found by its
        Message-ID or mailsec's X-MailSec-Delivery-Id. `hint`: the folder mailsec last put it in, looked at first."""
        ...

    def move(self, ref: MailRef, destination: Destination) -> MailRef | None:
        """Move one copy; RecoverableItemsPurges removes it for good (None)."""
        ...

    def locate_many(self, recipient: str, wanted: Sequence[Wanted]) -> list[list[MailRef]]:
        """`locate` for many messages of one mailbox at once: the copies of each, in `wanted`'s order."""
        ...

    def move_many(self, refs: Sequence[MailRef], destination: Destination) -> None:
        """`move` for many copies at once (as few commands as the backend allows)."""
        ...

    def append(self, recipient: str, raw: bytes, destination: Destination) -> MailRef:
        """Put a copy (mailsec's stored one) into the recipient's folder: restoring a purged message."""
        ...

    def check(self, recipient: str) -> list[str]:
        """Sign in for one mailbox and describe the folders moves would use (`mailsec mailbox test`)."""
        ...

    def close(self) -> None: ...


class OneAtATime:
    """`locate_many` and `move_many` for a backend whose API has no batch form: one request per message."""

    def locate_many(self: MailboxBackend, recipient: str, wanted: Sequence[Wanted]) -> list[list[MailRef]]:
        return [self.locate(recipient, w.message_id, w.delivery_id, w.hint) for w in wanted]

    def move_many(self: MailboxBackend, refs: Sequence[MailRef], destination: Destination) -> None:
        for ref in refs:
            self.move(ref, destination)
