"""Preview a stored message: size check, cache, render, and a PREVIEW entry in the action log for every view.
The API and the CLI both call `PreviewService.preview`, so a view is logged whichever face asked."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mailsec.config import Settings
from mailsec.mime import parse_message
from mailsec.model import Operation
from mailsec.observability import metrics
from mailsec.preview.document import build_document
from mailsec.preview.errors import PreviewError, PreviewTooLarge
from mailsec.preview.renderer import Renderer
from mailsec.store.blobs import BlobNotFound, BlobStore
from mailsec.store.messages import MessageRepo, StoredMessage
from mailsec.store.previews import PreviewCacheRepo

# Bump when anything that changes the picture changes (document building, browser options), to retire the cache.
RENDERER_VERSION = "2"  # 2: remote images drawn as placeholders, picture cropped to the content


@dataclass
class Preview:
    png: bytes
    width: int
    height: int
    truncated: bool
    remote_resources: list[dict[str, Any]] = field(default_factory=list)
    cached: bool = False

    def data(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "truncated": self.truncated,
            "remote_resources": self.remote_resources,
        }

    def to_json(self) -> dict[str, Any]:
        return {"screenshot": base64.b64encode(self.png).decode("ascii"), **self.data()}


def _norm(url: str) -> str:
    try:
        parts = urlsplit(url)
        return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))
    except ValueError:
        return url


def merge_resources(
    found: list[tuple[str, str]],
    requested: list[tuple[str, str]],
    placeholders: set[str] | frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """What the message would have loaded: URLs found in the document, marked `requested` when loading them was
    attempted and refused (by Chromium, or before it by drawing the image as a placeholder, then also marked
    `placeholder`); requests found only by the browser are added with Chromium's resource type as their kind."""
    tried = {_norm(url) for url, _ in requested}
    drawn = {_norm(url) for url in placeholders}
    out: dict[str, dict[str, Any]] = {}
    for url, kind in found:
        key = _norm(url)
        entry = {"url": url, "kind": kind, "requested": key in tried or key in drawn}
        if key in drawn:
            entry["placeholder"] = True
        out.setdefault(key, entry)
    for url, rtype in requested:
        out.setdefault(_norm(url), {"url": url, "kind": rtype, "requested": True})
    return list(out.values())


def _too_large(size: int, limit: int) -> PreviewTooLarge:
    return PreviewTooLarge(
        f"the message is {size} bytes; previews are limited to {limit} bytes (MAILSEC_PREVIEW_MAX_BYTES)"
    )


def render_message(renderer: Renderer, raw: bytes, max_bytes: int, timeout: float | None = None) -> Preview:
    """Raw message bytes to a preview: parse, make the document inert, render, report the remote resources."""
    if len(raw) > max_bytes:
        raise _too_large(len(raw), max_bytes)
    doc = build_document(parse_message(raw))
    shot = renderer.render(doc.html, timeout)
    return Preview(
        png=shot.png,
        width=shot.width,
        height=shot.height,
        truncated=shot.truncated,
        remote_resources=merge_resources([(r.url, r.kind) for r in doc.remote], shot.requests, doc.placeholders),
    )


class PreviewService:
    def __init__(
        self,
        settings: Settings,
        messages: MessageRepo,
        blobs: BlobStore,
        cache: PreviewCacheRepo,
        renderer: Renderer | None = None,
    ) -> None:
        self.settings = settings
        self.messages = messages
        self.blobs = blobs
        self.cache = cache
        self._own_renderer = renderer is None
        self.renderer = renderer or Renderer(
            chromium_path=settings.chromium_path,
            pages=settings.preview_pages,
            timeout=settings.preview_timeout_seconds,
            max_height=settings.preview_max_height,
            idle_seconds=settings.preview_idle_seconds,
            user=settings.preview_user,
        )

    def cache_key(self, raw_sha256: str) -> str:
        tag = f"{raw_sha256}:{RENDERER_VERSION}:{self.renderer.width}x{self.renderer.max_height}"
        return hashlib.sha256(tag.encode()).hexdigest()

    def render_raw(self, raw: bytes) -> Preview:
        """Render raw message bytes (no cache, no action log)."""
        try:
            result = render_message(self.renderer, raw, self.settings.preview_max_bytes)
        except Exception:
            metrics().preview_renders.labels(result="failed").inc()
            raise
        metrics().preview_renders.labels(result="rendered").inc()
        return result

    def preview(self, message: StoredMessage, requested_by: str | None) -> Preview:
        size = message.raw_size
        if size > self.settings.preview_max_bytes:
            raise _too_large(size, self.settings.preview_max_bytes)
        key = self.cache_key(message.raw_sha256)
        hit = self.cache.get(key)
        if hit is not None:
            png, data = hit
            result = Preview(
                png=png,
                width=int(data.get("width", self.renderer.width)),
                height=int(data.get("height", 0)),
                truncated=bool(data.get("truncated", False)),
                remote_resources=list(data.get("remote_resources", [])),
                cached=True,
            )
            metrics().preview_renders.labels(result="cached").inc()
        else:
            try:
                raw = self.blobs.get(message.raw_sha256)
            except BlobNotFound as exc:
                raise PreviewError("the stored raw message is missing from the blob store") from exc
            result = self.render_raw(raw)
            self.cache.put(key, result.png, result.data())
        self.messages.add_action(message.pk, Operation.PREVIEW, requested_by=requested_by)
        return result

    def close(self) -> None:
        if self._own_renderer:
            self.renderer.close()
