"""`/settings/quarantine_policy`: a mailsec extension (not in Cloudflare's API) for the gateway's per-account
quarantine policy — which dispositions are held instead of delivered, and the tag put before the Subject of delivered
messages per disposition. The same row `mailsec quarantine-policy` edits; answers use the standard envelope."""

# No `from __future__ import annotations`, as in settings.py: FastAPI must see real classes.

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from mailsec.api.auth import require_read, require_write, services_of
from mailsec.api.envelope import ERROR_RESPONSES, Envelope, bad_request, ok
from mailsec.api.routers.settings import PREFIX, DispositionName, RequestBody, iso_ts
from mailsec.store import policies as store
from mailsec.store.policies import QuarantinePolicy

router = APIRouter(prefix=PREFIX, tags=["mailsec extensions"], responses=ERROR_RESPONSES)
PATH = "/quarantine_policy"


class QuarantinePolicyPut(RequestBody):
    dispositions: list[str] = Field(
        max_length=len(store.QUARANTINE_VOCABULARY) * 2,
        description="Dispositions the gateway holds in quarantine instead of delivering (case-insensitive).",
    )
    subject_tag: dict[str, str] = Field(
        default={},
        description='Disposition -> tag put before the Subject of delivered messages, e.g. {"SPAM": "[SPAM]"}.',
    )


class QuarantinePolicyOut(BaseModel):
    dispositions: list[DispositionName]
    subject_tag: dict[str, str]
    is_default: bool
    modified_at: str | None


def policy_out(policy: QuarantinePolicy) -> dict[str, Any]:
    return {
        "dispositions": [d for d in policy.dispositions if d in store.QUARANTINE_VOCABULARY],
        "subject_tag": dict(policy.subject_tag),
        "is_default": policy.is_default,
        "modified_at": iso_ts(policy.updated_us) if policy.updated_us is not None else None,
    }


def current_policy(request: Request, account_id: str) -> QuarantinePolicy:
    """The account's stored policy, or the configured default when it has none (API and console show the same)."""
    services = services_of(request)
    return store.get_quarantine_policy(services.engine, account_id, services.settings.quarantine_dispositions)


@router.get(PATH, summary="Get the gateway's quarantine policy (mailsec)", response_model=Envelope[QuarantinePolicyOut])
def get_quarantine_policy(request: Request, account_id: str) -> Any:
    require_read(request, account_id)
    return ok(policy_out(current_policy(request, account_id)))


@router.put(
    PATH, summary="Replace the gateway's quarantine policy (mailsec)", response_model=Envelope[QuarantinePolicyOut]
)
def put_quarantine_policy(request: Request, account_id: str, body: QuarantinePolicyPut) -> Any:
    require_write(request, account_id)
    for n, value in enumerate(body.dispositions):
        try:
            store.check_dispositions([value])
        except ValueError as exc:
            raise bad_request(f"dispositions: {exc}", pointer=f"/dispositions/{n}") from exc
    for key, tag in body.subject_tag.items():
        try:
            store.check_subject_tags({key: tag})
        except ValueError as exc:
            raise bad_request(f"subject_tag: {exc}", pointer=f"/subject_tag/{key[:40]}") from exc
    services = services_of(request)
    saved = store.set_quarantine_policy(services.engine, account_id, body.dispositions, body.subject_tag)
    return ok(policy_out(saved))


@router.delete(
    PATH, summary="Reset the quarantine policy to the default (mailsec)", response_model=Envelope[QuarantinePolicyOut]
)
def reset_quarantine_policy(request: Request, account_id: str) -> Any:
    require_write(request, account_id)
    store.reset_quarantine_policy(services_of(request).engine, account_id)
    return ok(policy_out(current_policy(request, account_id)))
