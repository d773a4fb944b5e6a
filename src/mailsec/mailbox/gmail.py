"""Gmail backend (Google Workspace), written to the Gmail API v1's public contract: a service account with
domain-wide delegation gets a token per mailbox (JWT bearer grant), messages are found with the `rfc822msgid:`
search (spam and trash included), moved by labels (`messages.modify`, `trash`, `untrash`), hard-deleted with
`messages.delete`, restored with `messages.import`. Soft delete is Trash plus a `MailSec/Recoverable` label."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from mailsec.mailbox.base import MailRef, OneAtATime
from mailsec.mailbox.rest import RestClient, TokenSource, jwt_bearer
from mailsec.model import Destination

GMAIL_URL = "https://gmail.googleapis.com"
SCOPE = "https://mail.google.com/"  # messages.delete (hard delete) needs the full scope
RECOVERABLE_LABEL = "MailSec/Recoverable"
SYSTEM = {"INBOX": Destination.INBOX, "SPAM": Destination.JUNK}


class GmailBackend(OneAtATime):
    def __init__(self, domain: str, key: dict[str, Any], gmail_url: str = GMAIL_URL, timeout: float = 30.0) -> None:
        for field in ("client_email", "private_key", "token_uri"):
            if not key.get(field):
                raise ValueError(f"the service account key has no {field}")
        self.domain = domain
        self.gmail_url = gmail_url.rstrip("/")
        self.http = httpx.Client(timeout=timeout)
        self._tokens: dict[str, TokenSource] = {}
        self.key = key
        self.rest = RestClient(self.http, self._token_for)
        self._labels: dict[str, str] = {}  # mailbox -> id of the recoverable label

    @classmethod
    def from_integration(cls, url: str, secret: str, options: dict[str, Any]) -> GmailBackend:
        """`gmail://DOMAIN`; the secret is the service account's JSON key."""
        domain = urlsplit(url).hostname or ""
        try:
            key = json.loads(secret)
        except ValueError as exc:
            raise ValueError("a Gmail integration's secret is the service account's JSON key") from exc
        extra = {k: options[k] for k in ("gmail_url", "timeout") if k in options}
        return cls(domain, key, **extra)

    def _token_for(self, mailbox: str) -> TokenSource:
        found = self._tokens.get(mailbox)
        if found is None:
            found = self._tokens[mailbox] = TokenSource(jwt_bearer(self.http, self.key, SCOPE, mailbox))
        return found

    def _user(self, mailbox: str) -> str:
        return f"{self.gmail_url}/gmail/v1/users/{quote(mailbox)}"

    def _recoverable(self, mailbox: str) -> str:
        label = self._labels.get(mailbox)
        if label is None:
            listed = self.rest.json(mailbox, "GET", f"{self._user(mailbox)}/labels")
            label = next((str(x["id"]) for x in listed.get("labels", []) if x.get("name") == RECOVERABLE_LABEL), None)
            if label is None:
                body = {"name": RECOVERABLE_LABEL, "labelListVisibility": "labelHide",
                        "messageListVisibility": "hide"}  # fmt: skip
                label = str(self.rest.json(mailbox, "POST", f"{self._user(mailbox)}/labels", json=body)["id"])
            self._labels[mailbox] = label
        return label

    def _meaning(self, mailbox: str, labels: list[str]) -> tuple[str, Destination | None]:
        if "TRASH" in labels:
            hidden = self._recoverable(mailbox) in labels
            return ("TRASH", Destination.RECOVERABLE_DELETIONS if hidden else Destination.DELETED)
        for name, dest in SYSTEM.items():
            if name in labels:
                return name, dest
        return "ARCHIVE", None

    def _ref(self, mailbox: str, item: dict[str, Any]) -> MailRef:
        folder, dest = self._meaning(mailbox, [str(x) for x in item.get("labelIds", [])])
        return MailRef(mailbox, folder, str(item["id"]), dest)

    def locate(
        self, recipient: str, message_id: str, delivery_id: str | None = None, hint: Destination | None = None
    ) -> list[MailRef]:
        if not message_id:
            return []
        query = {"q": f"rfc822msgid:{message_id.strip('<>')}", "includeSpamTrash": "true"}
        listed = self.rest.json(recipient, "GET", f"{self._user(recipient)}/messages", params=query)
        refs = []
        for item in listed.get("messages", []):
            full = self.rest.json(
                recipient, "GET", f"{self._user(recipient)}/messages/{item['id']}", params={"format": "minimal"}
            )
            refs.append(self._ref(recipient, full))
        return refs

    def move(self, ref: MailRef, destination: Destination) -> MailRef | None:
        item = f"{self._user(ref.recipient)}/messages/{quote(ref.key)}"
        mailbox = ref.recipient
        if destination is Destination.RECOVERABLE_PURGES:
            self.rest.json(mailbox, "DELETE", item, ok=(204, 200))
            return None
        if ref.destination is destination:
            return ref
        hidden = self._recoverable(mailbox)
        if destination in (Destination.DELETED, Destination.RECOVERABLE_DELETIONS):
            if ref.folder != "TRASH":
                self.rest.json(mailbox, "POST", f"{item}/trash")
            soft = destination is Destination.RECOVERABLE_DELETIONS
            change = {"addLabelIds": [hidden] if soft else [], "removeLabelIds": [] if soft else [hidden]}
        else:
            if ref.folder == "TRASH":
                self.rest.json(mailbox, "POST", f"{item}/untrash")
            keep, drop = ("INBOX", "SPAM") if destination is Destination.INBOX else ("SPAM", "INBOX")
            change = {"addLabelIds": [keep], "removeLabelIds": [drop, hidden]}
        return self._ref(mailbox, self.rest.json(mailbox, "POST", f"{item}/modify", json=change))

    def append(self, recipient: str, raw: bytes, destination: Destination) -> MailRef:
        labels = {Destination.JUNK: ["SPAM"], Destination.DELETED: ["TRASH"]}.get(destination, ["INBOX"])
        body = {"raw": base64.urlsafe_b64encode(raw).decode("ascii"), "labelIds": labels}
        created = self.rest.json(
            recipient, "POST", f"{self._user(recipient)}/messages/import", params={"internalDateSource": "dateHeader"},
            json=body,
        )  # fmt: skip
        return self._ref(recipient, {"labelIds": labels, **created})

    def check(self, recipient: str) -> list[str]:
        return ["Inbox=INBOX", "JunkEmail=SPAM", "DeletedItems=TRASH",
                f"RecoverableItemsDeletions=TRASH+{RECOVERABLE_LABEL} ({self._recoverable(recipient)})"]  # fmt: skip

    def close(self) -> None:
        self.http.close()
