"""`/investigate/{id}/preview` (read) and `/investigate/preview` (write): a PNG of the message, rendered with no
script and no network, plus the remote resources the message would have loaded. Every view is action-logged."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from mailsec.api.auth import require_read, require_write
from mailsec.api.envelope import ERROR_RESPONSES, APIError, Envelope, ErrorEnvelope, bad_request, ok
from mailsec.api.routers.investigate import PREFIX, load_message
from mailsec.preview.errors import PreviewError
from mailsec.preview.service import PreviewService
from mailsec.store.previews import PreviewCacheRepo

router = APIRouter(
    prefix=PREFIX,
    tags=["investigate"],
    responses={
        **ERROR_RESPONSES,
        413: {"model": ErrorEnvelope, "description": "The message is too large to preview"},
        502: {"model": ErrorEnvelope, "description": "The browser failed on this message"},
        503: {"model": ErrorEnvelope, "description": "No browser available (Chromium missing) or all pages busy"},
        504: {"model": ErrorEnvelope, "description": "The render did not finish in time"},
    },
)

_lock = threading.Lock()


class RemoteResourceOut(BaseModel):
    url: str
    kind: str = Field(description="image, css, font, import, stylesheet, background, media, frame, prefetch, ...")
    requested: bool = Field(
        description="Loading it was attempted and refused (by Chromium, or by drawing the image as a placeholder)"
    )
    placeholder: bool = Field(False, description="A remote image drawn as a labelled box of its declared size")


class PreviewOut(BaseModel):
    screenshot: str = Field(description="A base64 encoded PNG image of the email")
    width: int | None = None
    height: int | None = None
    truncated: bool | None = Field(None, description="The message was taller than the height cap")
    remote_resources: list[RemoteResourceOut] = []


class PreviewRequest(BaseModel):
    id: str | None = None
    postfix_id: str | None = None


def preview_service(request: Request) -> PreviewService:
    """One per app, made on first use, so the browser starts only when someone asks for a preview."""
    state = request.app.state
    with _lock:
        service: PreviewService | None = getattr(state, "preview", None)
        if service is None:
            services = state.services
            service = PreviewService(
                services.settings, services.messages, services.blobs, PreviewCacheRepo(services.engine)
            )
            state.preview = service
    return service


def close_preview(app: Any) -> None:
    """Stop the app's browser, if one was started (called when the app shuts down)."""
    service: PreviewService | None = getattr(app.state, "preview", None)
    if service is not None:
        service.close()
        app.state.preview = None


def _answer(request: Request, account_id: str, ref: str, requested_by: str) -> dict[str, Any]:
    message = load_message(request, account_id, ref)
    try:
        result = preview_service(request).preview(message, requested_by)
    except PreviewError as exc:
        headers = {"retry-after": str(exc.retry_after)} if exc.retry_after else None
        raise APIError(exc.status, exc.code, exc.message, headers=headers) from exc
    return ok(result.to_json())


@router.get(
    "/investigate/{investigate_id}/preview",
    response_model=Envelope[PreviewOut],
    summary="Get email preview",
)
def get_preview(request: Request, account_id: str, investigate_id: str) -> Any:
    grant = require_read(request, account_id)
    return _answer(request, account_id, investigate_id, grant.principal)


@router.post(
    "/investigate/preview",
    response_model=Envelope[PreviewOut],
    summary="Preview any message (body: id or postfix_id)",
)
def create_preview(request: Request, account_id: str, body: PreviewRequest) -> Any:
    grant = require_write(request, account_id)
    ref = (body.id or body.postfix_id or "").strip()
    if not ref:
        raise bad_request("id (or postfix_id) is required", pointer="/id")
    return _answer(request, account_id, ref, grant.principal)
