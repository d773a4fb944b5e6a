"""Microsoft Graph backend (Exchange Online), written to Graph v1.0's public contract: an application token by
client credentials (`https://graph.microsoft.com/.default`), messages found by `internetMessageId`, moved with
`POST /users/{id}/messages/{id}/move` to well-known folder names, hard-deleted with `permanentDelete` (to the
Purges folder), restored by creating the message from its MIME content."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from mailsec.mailbox.base import MailRef, OneAtATime
from mailsec.mailbox.rest import RestClient, TokenSource, client_credentials
from mailsec.model import Destination

GRAPH_URL = "https://graph.microsoft.com/v1.0"
LOGIN_URL = "https://login.microsoftonline.com"
SCOPE = "https://graph.microsoft.com/.default"
WELL_KNOWN = {
    Destination.INBOX: "inbox",
    Destination.JUNK: "junkemail",
    Destination.DELETED: "deleteditems",
    Destination.RECOVERABLE_DELETIONS: "recoverableitemsdeletions",
}


class GraphBackend(OneAtATime):
    def __init__(
        self,
        tenant: str,
        client_id: str,
        secret: str,
        graph_url: str = GRAPH_URL,
        login_url: str = LOGIN_URL,
        timeout: float = 30.0,
        rest: RestClient | None = None,
    ) -> None:
        self.graph_url = graph_url.rstrip("/")
        self.http = httpx.Client(timeout=timeout)
        token_url = f"{login_url.rstrip('/')}/{quote(tenant)}/oauth2/v2.0/token"
        self._token = TokenSource(client_credentials(self.http, token_url, client_id, secret, SCOPE))
        self.rest = rest or RestClient(self.http, lambda _mailbox: self._token)
        self._folders: dict[str, dict[str, Destination]] = {}  # mailbox -> folder id -> meaning

    @classmethod
    def from_integration(cls, url: str, secret: str, options: dict[str, Any]) -> GraphBackend:
        """`graph://TENANT` (a tenant id or domain), `client_id` in the options."""
        tenant = urlsplit(url).hostname or ""
        if not tenant or not options.get("client_id"):
            raise ValueError("a Graph integration is graph://TENANT with a client_id")
        extra = {k: options[k] for k in ("graph_url", "login_url", "timeout") if k in options}
        return cls(tenant, str(options["client_id"]), secret, **extra)

    def _user(self, mailbox: str) -> str:
        return f"{self.graph_url}/users/{quote(mailbox)}"

    def _folder_ids(self, mailbox: str) -> dict[str, Destination]:
        known = self._folders.get(mailbox)
        if known is None:
            known = {}
            for dest, name in WELL_KNOWN.items():
                body = self.rest.json(
                    mailbox, "GET", f"{self._user(mailbox)}/mailFolders/{name}", params={"$select": "id"}
                )
                known[str(body["id"])] = dest
            self._folders[mailbox] = known
        return known

    def _ref(self, mailbox: str, item: dict[str, Any]) -> MailRef:
        folder = str(item.get("parentFolderId", ""))
        return MailRef(mailbox, folder, str(item["id"]), self._folder_ids(mailbox).get(folder))

    def locate(
        self, recipient: str, message_id: str, delivery_id: str | None = None, hint: Destination | None = None
    ) -> list[MailRef]:
        """By internetMessageId, in the mailbox and in its soft-delete folder (not part of /messages)."""
        if not message_id:
            return []
        params = {"$filter": f"internetMessageId eq '{message_id.replace(chr(39), chr(39) * 2)}'",
                  "$select": "id,parentFolderId,internetMessageId"}  # fmt: skip
        found: list[MailRef] = []
        for path in ("/messages", "/mailFolders/recoverableitemsdeletions/messages"):
            url: str | None = f"{self._user(recipient)}{path}"
            query: dict[str, str] | None = params
            while url:
                body = self.rest.json(recipient, "GET", url, params=query)
                found += [self._ref(recipient, item) for item in body.get("value", [])]
                url, query = body.get("@odata.nextLink"), None
        return list({r.key: r for r in found}.values())

    def move(self, ref: MailRef, destination: Destination) -> MailRef | None:
        item = f"{self._user(ref.recipient)}/messages/{quote(ref.key)}"
        if destination is Destination.RECOVERABLE_PURGES:
            self.rest.json(ref.recipient, "POST", f"{item}/permanentDelete", ok=(204, 200))
            return None
        if ref.destination is destination:
            return ref
        moved = self.rest.json(
            ref.recipient, "POST", f"{item}/move", ok=(201, 200), json={"destinationId": WELL_KNOWN[destination]}
        )
        return self._ref(ref.recipient, moved)

    def append(self, recipient: str, raw: bytes, destination: Destination) -> MailRef:
        folder = WELL_KNOWN.get(destination, "inbox")
        created = self.rest.json(
            recipient, "POST", f"{self._user(recipient)}/mailFolders/{folder}/messages", ok=(201, 200),
            content=base64.b64encode(raw), headers={"Content-Type": "text/plain"},
        )  # fmt: skip
        return self._ref(recipient, created)

    def check(self, recipient: str) -> list[str]:
        ids = self._folder_ids(recipient)
        return [f"{dest.value}={WELL_KNOWN[dest]} ({fid})" for fid, dest in ids.items()]

    def close(self) -> None:
        self.http.close()
