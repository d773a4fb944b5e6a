"""Credentials, scopes and rate limits. A credential reaches only the accounts it was granted; writes need the
write scope. Codes follow the real service: 400/9106, 403/9109, 403/9103, 403/10000, 429."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from fastapi import Request

from mailsec.api.envelope import APIError
from mailsec.services import Services
from mailsec.store.accounts import Grant


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per credential: `per_minute` sustained, `burst` at once."""

    def __init__(self, per_minute: int, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(burst, 1))
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> float:
        """0 when allowed, else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate


class FailureThrottle:
    """Failed authentications per client address and per presented credential, each a token bucket (`per_minute`
    sustained, `burst` at once). While either bucket is empty, the request gets 429 before its credential is even
    checked, so guessing runs no faster than the buckets refill. Successes cost nothing."""

    MAX_KEYS = 50_000

    def __init__(self, per_minute: int, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(burst, 1))
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return self.burst
        return min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)

    def wait(self, keys: list[str]) -> float:
        """0 when these keys may try, else the seconds until they may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            lowest = min((self._level(k, now) for k in keys), default=self.burst)
        return 0.0 if lowest >= 1 else (1 - lowest) / self.rate

    def failed(self, keys: list[str]) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > self.MAX_KEYS:  # forget keys that have fully recovered
                self._buckets = {k: b for k, b in self._buckets.items() if self._level(k, now) < self.burst}
            for key in keys:
                self._buckets[key] = _Bucket(max(0.0, self._level(key, now) - 1), now)


def _throttle_keys(request: Request, credential: str) -> list[str]:
    client = request.client.host if request.client else "unknown"
    digest = hashlib.sha256(credential.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return [f"ip:{client}", f"cred:{digest}"]


def _too_many(wait: float) -> APIError:
    return APIError(
        429,
        10429,
        "Too many failed authentication attempts; wait and try again",
        headers={"retry-after": str(max(1, int(wait + 0.999)))},
    )


def services_of(request: Request) -> Services:
    """The process's services, put on the app by `create_app`: what every route (API and console) works with."""
    services: Services = request.app.state.services
    return services


def authenticate(request: Request) -> Grant:
    cached: Grant | None = getattr(request.state, "grant", None)
    if cached is not None:
        return cached
    services = services_of(request)
    limiter: RateLimiter = request.app.state.rate_limiter
    auth = request.headers.get("authorization", "")
    email = request.headers.get("x-auth-email")
    key = request.headers.get("x-auth-key")
    throttle: FailureThrottle | None = getattr(request.app.state, "auth_throttle", None)
    grant: Grant | None
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(400, 6111, "Invalid format for Authorization header")
        keys = _throttle_keys(request, "token:" + token.strip())
        _check_throttle(throttle, keys)
        grant = services.accounts.grant_for_token(token.strip())
        if grant is None:
            _record_failure(throttle, keys)
            raise APIError(403, 9109, "Invalid access token")
    elif email and key:
        keys = _throttle_keys(request, "email:" + email.strip().lower())
        _check_throttle(throttle, keys)
        grant = services.accounts.grant_for_user(email, key)
        if grant is None:
            _record_failure(throttle, keys)
            raise APIError(403, 9103, "Unknown X-Auth-Key or X-Auth-Email")
    else:
        raise APIError(400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
    wait = limiter.check(grant.principal)
    if wait > 0:
        raise APIError(
            429,
            1015,
            "Please wait and consider throttling your request speed",
            headers={"retry-after": str(max(1, int(wait + 0.999)))},
        )
    request.state.grant = grant
    return grant


def _check_throttle(throttle: FailureThrottle | None, keys: list[str]) -> None:
    wait = throttle.wait(keys) if throttle is not None else 0.0
    if wait > 0:
        raise _too_many(wait)


def _record_failure(throttle: FailureThrottle | None, keys: list[str]) -> None:
    if throttle is not None:
        throttle.failed(keys)


def require_read(request: Request, account_id: str) -> Grant:
    grant = authenticate(request)
    if not grant.can_read(account_id):
        raise APIError(403, 10000, "Authentication error")
    return grant


def require_write(request: Request, account_id: str) -> Grant:
    grant = require_read(request, account_id)
    if not grant.can_write(account_id):
        raise APIError(
            403, 10000, "Authentication error: this credential has read-only access (Cloud Email Security: Read)"
        )
    return grant
