"""Contract fakes of Microsoft Graph and the Gmail API: Microsoft 365 and Google Workspace cannot run here, so these
loopback HTTP servers follow the providers' documented requests and responses for the calls mailsec makes (and
refuse anything else): OAuth2 token endpoints that check the grant, bearer tokens that expire and can be revoked,
429 + Retry-After on demand, Graph's well-known folders, `internetMessageId` filter, `move` (a new id),
`permanentDelete`, MIME create; Gmail's `rfc822msgid:` search, labels, `modify`, `trash`/`untrash`, `delete`,
`import`, and the service account's RS256 JWT checked against its public key. They are fakes, named as such."""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

Reply = tuple[int, dict[str, Any] | None]


class ContractFake:
    """A threaded HTTP server; subclasses answer `handle(method, path, query, headers, body)`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.throttle_left = 0
        self.throttle_seconds = "0.01"
        self.requests: list[tuple[str, str]] = []
        self.tokens: dict[str, str] = {}  # token -> who it was issued for
        self._serial = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                fake.requests.append((self.command, parts.path))
                with fake.lock:
                    status, payload, extra = fake.dispatch(self.command, parts.path, parse_qs(parts.query),
                                                           dict(self.headers), body)  # fmt: skip
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._serial):06d}"

    def throttle(self, count: int, retry_after: str = "0.01") -> None:
        self.throttle_left, self.throttle_seconds = count, retry_after

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def dispatch(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        if not self.is_token_path(path):
            if self.throttle_left > 0:
                self.throttle_left -= 1
                return 429, self.throttled_body(), {"Retry-After": self.throttle_seconds}
            auth = headers.get("Authorization") or headers.get("authorization") or ""
            holder = self.tokens.get(auth.removeprefix("Bearer "))
            if holder is None:
                return 401, self.unauthenticated_body(), {"WWW-Authenticate": "Bearer"}
            headers = {**headers, "x-token-holder": holder}
        status, payload = self.handle(method, path, query, headers, body)
        return status, payload, {}

    def form(self, body: bytes) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(body.decode()).items()}

    def is_token_path(self, path: str) -> bool:
        raise NotImplementedError

    def throttled_body(self) -> dict[str, Any]:
        raise NotImplementedError

    def unauthenticated_body(self) -> dict[str, Any]:
        raise NotImplementedError

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> Reply:
        raise NotImplementedError


def _message_id(raw: bytes) -> str:
    return str(message_from_bytes(raw).get("Message-ID", "")).strip()


# -- Microsoft Graph v1.0 ---------------------------------------------------------------------------------------

GRAPH_FOLDERS = ("inbox", "junkemail", "deleteditems", "recoverableitemsdeletions", "recoverableitemspurges")


class GraphContractFake(ContractFake):
    """Tenant `tenant`, application `client_id` with `secret`; mailboxes by user principal name."""

    def __init__(self, tenant: str, client_id: str, secret: str, users: list[str], token_lifetime: int = 3599) -> None:
        self.tenant, self.client_id, self.secret = tenant, client_id, secret
        self.token_lifetime = token_lifetime
        self.users = set(users)
        self.items: dict[str, dict[str, dict[str, Any]]] = {u: {} for u in users}  # user -> id -> item
        super().__init__()

    def folder_id(self, user: str, name: str) -> str:
        return f"AAMk{abs(hash((user, name))) % 10**8:08d}{name}"

    def deliver(self, user: str, raw: bytes, folder: str = "inbox") -> str:
        item_id = self.new_id("AAMkAGI")
        self.items[user][item_id] = {"id": item_id, "folder": folder, "internetMessageId": _message_id(raw), "raw": raw}
        return item_id

    def folders_of(self, user: str, internet_message_id: str) -> list[str]:
        return sorted(i["folder"] for i in self.items[user].values() if i["internetMessageId"] == internet_message_id)

    def is_token_path(self, path: str) -> bool:
        return path.endswith("/oauth2/v2.0/token")

    def throttled_body(self) -> dict[str, Any]:
        return {"error": {"code": "TooManyRequests", "message": "Please retry after the time in Retry-After."}}

    def unauthenticated_body(self) -> dict[str, Any]:
        return {"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired or is not valid"}}

    def _public(self, user: str, item: dict[str, Any]) -> dict[str, Any]:
        return {"id": item["id"], "parentFolderId": self.folder_id(user, item["folder"]),
                "internetMessageId": item["internetMessageId"]}  # fmt: skip

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> Reply:
        if self.is_token_path(path):
            form = self.form(body)
            if path != f"/{self.tenant}/oauth2/v2.0/token" or form.get("grant_type") != "client_credentials":
                return 400, {"error": "unsupported_grant_type"}
            if form.get("client_id") != self.client_id or form.get("client_secret") != self.secret:
                return 401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret"}
            if form.get("scope") != "https://graph.microsoft.com/.default":
                return 400, {"error": "invalid_scope"}
            token = self.new_id("eyJ0eXAi")
            self.tokens[token] = "app"
            return 200, {"token_type": "Bearer", "expires_in": self.token_lifetime, "access_token": token}
        m = re.fullmatch(r"/v1\.0/users/([^/]+)(/.*)", path)
        if m is None:
            return 400, {"error": {"code": "BadRequest", "message": "Invalid request"}}
        user, rest = unquote(m.group(1)), m.group(2)
        if user not in self.users:
            return 404, {"error": {"code": "ErrorInvalidUser", "message": f"The requested user '{user}' is invalid."}}
        mailbox = self.items[user]
        if method == "GET" and (f := re.fullmatch(r"/mailFolders/(\w+)", rest)):
            if f.group(1) not in GRAPH_FOLDERS:
                return 404, {"error": {"code": "ErrorFolderNotFound"}}
            return 200, {"id": self.folder_id(user, f.group(1)), "displayName": f.group(1)}
        if method == "GET" and rest in ("/messages", "/mailFolders/recoverableitemsdeletions/messages"):
            wanted = re.fullmatch(r"internetMessageId eq '((?:[^']|'')*)'", query.get("$filter", [""])[0])
            if wanted is None:
                return 400, {"error": {"code": "BadRequest", "message": "Invalid filter clause"}}
            mid = wanted.group(1).replace("''", "'")
            scope = ("recoverableitemsdeletions",) if rest != "/messages" else ("inbox", "junkemail", "deleteditems")
            found = [
                self._public(user, i)
                for i in mailbox.values()
                if i["internetMessageId"] == mid and i["folder"] in scope
            ]
            return 200, {"@odata.context": "...", "value": found}
        if method == "POST" and (f := re.fullmatch(r"/messages/([^/]+)/(move|permanentDelete)", rest)):
            item = mailbox.get(unquote(f.group(1)))
            if item is None:
                return 404, {"error": {"code": "ErrorItemNotFound"}}
            if f.group(2) == "permanentDelete":
                item["folder"] = "recoverableitemspurges"
                return 204, None
            dest = json.loads(body or b"{}").get("destinationId")
            if dest not in GRAPH_FOLDERS:
                return 400, {"error": {"code": "ErrorInvalidIdMalformed"}}
            del mailbox[item["id"]]
            item = {**item, "id": self.new_id("AAMkAGI"), "folder": dest}  # a move gives the item a new id
            mailbox[item["id"]] = item
            return 201, self._public(user, item)
        if method == "POST" and (f := re.fullmatch(r"/mailFolders/(\w+)/messages", rest)):
            if headers.get("Content-Type", headers.get("content-type")) != "text/plain":
                return 415, {"error": {"code": "UnsupportedMediaType"}}
            raw = base64.b64decode(body)
            item_id = self.deliver(user, raw, f.group(1))
            return 201, self._public(user, mailbox[item_id])
        return 405, {"error": {"code": "MethodNotAllowed", "message": f"{method} {rest}"}}


# -- Gmail API v1 ------------------------------------------------------------------------------------------------


def service_account(client_email: str, token_uri: str) -> tuple[dict[str, Any], rsa.RSAPublicKey]:
    from cryptography.hazmat.primitives import serialization

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key = {"type": "service_account", "client_email": client_email, "private_key": pem, "private_key_id": "k1",
           "token_uri": token_uri}  # fmt: skip
    return key, private.public_key()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class GmailContractFake(ContractFake):
    """Service account `client_email` (its public key) with domain-wide delegation over `users`."""

    def __init__(self, client_email: str, public_key: rsa.RSAPublicKey, users: list[str]) -> None:
        self.client_email, self.public_key = client_email, public_key
        self.users = set(users)
        self.items: dict[str, dict[str, dict[str, Any]]] = {u: {} for u in users}
        self.labels: dict[str, dict[str, str]] = {u: {} for u in users}  # user -> label id -> name
        super().__init__()

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def deliver(self, user: str, raw: bytes, labels: tuple[str, ...] = ("INBOX",)) -> str:
        item_id = self.new_id("18c")
        self.items[user][item_id] = {"id": item_id, "threadId": item_id, "labelIds": list(labels),
                                     "rfc822msgid": _message_id(raw).strip("<>"), "raw": raw}  # fmt: skip
        return item_id

    def labels_of(self, user: str, message_id: str) -> list[list[str]]:
        return [sorted(i["labelIds"]) for i in self.items[user].values() if i["rfc822msgid"] == message_id.strip("<>")]

    def is_token_path(self, path: str) -> bool:
        return path == "/token"

    def throttled_body(self) -> dict[str, Any]:
        return {"error": {"code": 429, "message": "Rate Limit Exceeded", "status": "RESOURCE_EXHAUSTED"}}

    def unauthenticated_body(self) -> dict[str, Any]:
        return {"error": {"code": 401, "message": "Invalid Credentials", "status": "UNAUTHENTICATED"}}

    def _grant(self, form: dict[str, str]) -> Reply:
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type"}
        try:
            head, claims, signature = form.get("assertion", "").split(".")
            self.public_key.verify(_unb64(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
            header, payload = json.loads(_unb64(head)), json.loads(_unb64(claims))
        except Exception:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if (
            header.get("alg") != "RS256"
            or payload.get("iss") != self.client_email
            or payload.get("aud") != self.token_uri
        ):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT: bad iss or aud"}
        if "https://mail.google.com/" not in str(payload.get("scope", "")).split():
            return 400, {"error": "invalid_scope"}
        if payload.get("sub") not in self.users:
            return 401, {"error": "unauthorized_client", "error_description": "Client is unauthorized for this user"}
        token = self.new_id("ya29.")
        self.tokens[token] = str(payload["sub"])
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _minimal(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"id": item["id"], "threadId": item["threadId"], "labelIds": list(item["labelIds"])}

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> Reply:
        if self.is_token_path(path):
            return self._grant(self.form(body))
        m = re.fullmatch(r"/gmail/v1/users/([^/]+)(/.*)", path)
        if m is None:
            return 404, {"error": {"code": 404, "status": "NOT_FOUND"}}
        user, rest = unquote(m.group(1)), m.group(2)
        if headers.get("x-token-holder") != user:  # delegation is per user: a token acts for its subject only
            return 403, {"error": {"code": 403, "message": "Delegation denied", "status": "PERMISSION_DENIED"}}
        mailbox, labels = self.items[user], self.labels[user]
        if method == "GET" and rest == "/labels":
            system = [{"id": x, "name": x, "type": "system"} for x in ("INBOX", "SPAM", "TRASH")]
            return 200, {"labels": system + [{"id": k, "name": v, "type": "user"} for k, v in labels.items()]}
        if method == "POST" and rest == "/labels":
            name = json.loads(body)["name"]
            if name in labels.values():
                return 409, {"error": {"code": 409, "message": "Label name exists or conflicts"}}
            label_id = self.new_id("Label_")
            labels[label_id] = name
            return 200, {"id": label_id, "name": name, "type": "user"}
        if method == "GET" and rest == "/messages":
            q = query.get("q", [""])[0]
            if not q.startswith("rfc822msgid:"):
                return 400, {"error": {"code": 400, "message": "Invalid search query"}}
            wanted = q.removeprefix("rfc822msgid:").strip("<>")
            spam_trash = query.get("includeSpamTrash", ["false"])[0] == "true"
            found = [{"id": i["id"], "threadId": i["threadId"]} for i in mailbox.values() if i["rfc822msgid"] == wanted
                     and (spam_trash or not {"SPAM", "TRASH"} & set(i["labelIds"]))]  # fmt: skip
            return 200, ({"messages": found} if found else {}) | {"resultSizeEstimate": len(found)}
        if method == "POST" and rest == "/messages/import":
            data = json.loads(body)
            item_id = self.deliver(user, _unb64(data["raw"]), tuple(data.get("labelIds", [])))
            return 200, self._minimal(mailbox[item_id])
        f = re.fullmatch(r"/messages/([^/]+)(/modify|/trash|/untrash)?", rest)
        if f is None:
            return 404, {"error": {"code": 404, "status": "NOT_FOUND"}}
        item = mailbox.get(f.group(1))
        if item is None:
            return 404, {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}}
        action = f.group(2)
        if method == "GET" and action is None:
            return 200, self._minimal(item)
        if method == "DELETE" and action is None:
            del mailbox[item["id"]]
            return 204, None
        if method == "POST" and action == "/trash":
            item["labelIds"] = [x for x in item["labelIds"] if x not in ("INBOX", "SPAM")] + ["TRASH"]
            return 200, self._minimal(item)
        if method == "POST" and action == "/untrash":
            item["labelIds"] = [x for x in item["labelIds"] if x != "TRASH"]
            return 200, self._minimal(item)
        if method == "POST" and action == "/modify":
            change = json.loads(body)
            known = {"INBOX", "SPAM", "TRASH", *labels}
            if not set(change.get("addLabelIds", []) + change.get("removeLabelIds", [])) <= known:
                return 400, {"error": {"code": 400, "message": "Invalid label"}}
            kept = [x for x in item["labelIds"] if x not in change.get("removeLabelIds", [])]
            item["labelIds"] = kept + [x for x in change.get("addLabelIds", []) if x not in kept]
            return 200, self._minimal(item)
        return 405, {"error": {"code": 405, "status": "METHOD_NOT_ALLOWED"}}
