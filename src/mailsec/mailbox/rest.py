"""What the REST backends (Microsoft Graph, Gmail) share: OAuth2 access tokens that renew themselves (client
credentials; a service account's signed JWT), and requests that honour throttling (429/503 with Retry-After) and
turn transport and credential failures into the mailbox errors."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailsec.mailbox.base import MailboxAuthError, MailboxError

RENEW_BEFORE_SECONDS = 60.0


class TokenSource:
    """An access token, fetched when first needed and again shortly before it expires or when the API refused it."""

    def __init__(self, fetch: Callable[[], tuple[str, float]], clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.fetched = 0  # how many tokens were fetched (renewals show here)

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires - RENEW_BEFORE_SECONDS:
                self._token, lifetime = self._fetch()
                self._expires = self._clock() + lifetime
                self.fetched += 1
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None


def _token_reply(resp: httpx.Response, what: str) -> tuple[str, float]:
    if resp.status_code in (400, 401, 403):
        raise MailboxAuthError(f"{what} refused the credentials: {resp.status_code} {resp.text[:300]}")
    if resp.status_code != 200:
        raise MailboxError(f"{what} answered {resp.status_code}: {resp.text[:300]}")
    body = resp.json()
    return str(body["access_token"]), float(body.get("expires_in", 3600))


def client_credentials(
    http: httpx.Client, token_url: str, client_id: str, secret: str, scope: str
) -> Callable[[], tuple[str, float]]:
    """OAuth2 client-credentials grant (RFC 6749 §4.4), as Microsoft identity platform takes it."""

    def fetch() -> tuple[str, float]:
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": scope}
        try:
            resp = http.post(token_url, data=form)
        except httpx.HTTPError as exc:
            raise MailboxError(f"token endpoint {token_url} unreachable: {exc}") from exc
        return _token_reply(resp, "the token endpoint")

    return fetch


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def service_account_jwt(key: dict[str, Any], scope: str, subject: str, now: float | None = None) -> str:
    """The signed assertion of a Google service account acting for `subject` (domain-wide delegation): RS256 over
    the JSON header and claims (RFC 7523)."""
    issued = int(now if now is not None else time.time())
    claims = {"iss": key["client_email"], "scope": scope, "aud": key["token_uri"], "sub": subject,
              "iat": issued, "exp": issued + 3600}  # fmt: skip
    header = {"alg": "RS256", "typ": "JWT", **({"kid": key["private_key_id"]} if key.get("private_key_id") else {})}
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}".encode()
    private = serialization.load_pem_private_key(str(key["private_key"]).encode(), password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise MailboxAuthError("the service account key is not an RSA key")
    signature = private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{_b64url(signature)}"


def jwt_bearer(http: httpx.Client, key: dict[str, Any], scope: str, subject: str) -> Callable[[], tuple[str, float]]:
    def fetch() -> tuple[str, float]:
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": service_account_jwt(key, scope, subject)}  # fmt: skip
        try:
            resp = http.post(str(key["token_uri"]), data=form)
        except httpx.HTTPError as exc:
            raise MailboxError(f"token endpoint {key['token_uri']} unreachable: {exc}") from exc
        return _token_reply(resp, "the token endpoint")

    return fetch


def retry_after(resp: httpx.Response, default: float = 1.0) -> float:
    value = resp.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


class RestClient:
    """Authorised JSON requests with throttling handled: a 429 or 503 waits Retry-After (at most `max_wait`
    seconds, `retries` times); a 401 renews the token once."""

    def __init__(
        self,
        http: httpx.Client,
        tokens: Callable[[str], TokenSource],
        retries: int = 5,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.retries = retries
        self.max_wait = max_wait
        self.sleep = sleep
        self.throttled = 0

    def request(self, mailbox: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        source = self.tokens(mailbox)
        renewed = False
        for attempt in range(self.retries + 1):
            headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {source.token()}"}
            try:
                resp = self.http.request(method, url, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                raise MailboxError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
            if resp.status_code == 401 and not renewed:
                source.invalidate()
                renewed = True
                continue
            if resp.status_code in (429, 503):
                if attempt == self.retries:
                    break
                self.throttled += 1
                self.sleep(min(retry_after(resp), self.max_wait))
                continue
            if resp.status_code in (401, 403):
                raise MailboxAuthError(f"{method} {url}: {resp.status_code} {resp.text[:300]}")
            return resp
        raise MailboxError(f"{method} {url}: still throttled after {self.retries} retries")

    def json(self, mailbox: str, method: str, url: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        resp = self.request(mailbox, method, url, **kwargs)
        if resp.status_code not in ok:
            raise MailboxError(f"{method} {url}: {resp.status_code} {resp.text[:300]}")
        return resp.json() if resp.content else {}
