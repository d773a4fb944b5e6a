"""`/settings/domains`: the protected domains (list, get, create, edit, replace, delete, batch, bulk delete), the
same rows the mail administrator manages with `mailsec domain`. Shapes follow the reference OpenAPI document; ids
are numeric strings. Every write goes through the domain store's add/update/delete, so its ownership rules apply to
batches too."""

# No `from __future__ import annotations`, as in settings.py.

import ipaddress
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator

from mailsec.api.auth import require_read, require_write
from mailsec.api.envelope import ERROR_RESPONSES, Envelope, bad_request, not_found, ok
from mailsec.api.routers.settings import (
    PREFIX,
    DeletedOut,
    DeliveryModeName,
    DispositionName,
    EntryId,
    Page,
    PageEnvelope,
    PerPage,
    Region,
    RequestBody,
    iso_ts,
    page_of,
    services_of,
)
from mailsec.config import Settings
from mailsec.ids import parse_numeric_id
from mailsec.report_address import REPORT_ADDRESS
from mailsec.scan.resolvers import DnspythonResolver
from mailsec.store.accounts import AlreadyExists
from mailsec.store.domains import PENDING, Domain, DomainRefused, normalize_domain, validate_transport

router = APIRouter(prefix=PREFIX, tags=["settings"], responses=ERROR_RESPONSES)


# -- protected domains ---------------------------------------------------------------------------------------------

LOOKBACK_HOPS = (1, 20)  # the reference: "Number of hops to trace back through received headers (1-20)"
MAX_BATCH = 1000


def _lookback_in_range(value: Any) -> Any:
    low, high = LOOKBACK_HOPS
    if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
        raise ValueError(f"lookback_hops must be from {low} to {high}, got {value}")
    return value


class DomainPut(RequestBody):
    allowed_delivery_modes: list[DeliveryModeName] = Field(min_length=1)
    drop_dispositions: list[DispositionName] = []
    ip_restrictions: list[str] = []
    regions: list[Region] = []
    folder: Literal["AllItems", "Inbox"] | None = None
    integration_id: str | None = None
    lookback_hops: int | None = Field(default=None, ge=LOOKBACK_HOPS[0], le=LOOKBACK_HOPS[1])
    require_tls_inbound: bool | None = None
    require_tls_outbound: bool | None = None
    transport: str | None = Field(default=None, max_length=1024)

    _lookback = field_validator("lookback_hops", mode="before")(_lookback_in_range)


class DomainCreate(DomainPut):
    domain: str = Field(min_length=1, max_length=255)


class DomainEdit(RequestBody):
    allowed_delivery_modes: list[DeliveryModeName] | None = Field(default=None, min_length=1)
    drop_dispositions: list[DispositionName] | None = None
    ip_restrictions: list[str] | None = None
    regions: list[Region] | None = None
    folder: Literal["AllItems", "Inbox"] | None = None
    integration_id: str | None = None
    lookback_hops: int | None = Field(default=None, ge=LOOKBACK_HOPS[0], le=LOOKBACK_HOPS[1])
    require_tls_inbound: bool | None = None
    require_tls_outbound: bool | None = None
    transport: str | None = Field(default=None, max_length=1024)

    _lookback = field_validator("lookback_hops", mode="before")(_lookback_in_range)


class DomainRef(RequestBody):
    id: EntryId


class DomainPatchItem(DomainEdit):
    id: EntryId


class DomainPutItem(DomainPut):
    id: EntryId


class DomainBatch(RequestBody):
    deletes: list[DomainRef] = Field(default_factory=list, max_length=MAX_BATCH)
    patches: list[DomainPatchItem] = Field(default_factory=list, max_length=MAX_BATCH)
    puts: list[DomainPutItem] = Field(default_factory=list, max_length=MAX_BATCH)
    posts: list[DomainCreate] = Field(default_factory=list, max_length=MAX_BATCH)


class DomainOut(BaseModel):
    id: str
    allowed_delivery_modes: list[DeliveryModeName]
    created_at: str
    domain: str
    drop_dispositions: list[DispositionName]
    folder: Literal["AllItems", "Inbox"] | None
    inbox_provider: Literal["Microsoft", "Google"] | None
    integration_id: str | None
    ip_restrictions: list[str]
    last_modified: str
    lookback_hops: int
    modified_at: str | None
    o365_tenant_id: str | None
    regions: list[Region]
    require_tls_inbound: bool
    require_tls_outbound: bool
    status: Literal["PENDING", "ACTIVE", "FAILED", "TIMEOUT"]
    transport: str


class DomainBatchOut(BaseModel):
    deletes: list[DeletedOut]
    patches: list[DomainOut]
    puts: list[DomainOut]
    posts: list[DomainOut]


DOMAIN_SETTINGS = (
    "drop_dispositions",
    "ip_restrictions",
    "regions",
    "folder",
    "integration_id",
    "lookback_hops",
    "require_tls_inbound",
    "require_tls_outbound",
)


def domain_out(d: Domain) -> dict[str, Any]:
    s = d.settings
    modes = s.get("allowed_delivery_modes") or [d.mode]
    return {
        "id": str(d.id),
        "allowed_delivery_modes": list(modes),
        "created_at": iso_ts(d.created_us),
        "domain": d.domain,
        "drop_dispositions": list(s.get("drop_dispositions") or []),
        "folder": s.get("folder"),
        "inbox_provider": None,
        "integration_id": s.get("integration_id"),
        "ip_restrictions": list(s.get("ip_restrictions") or []),
        "last_modified": iso_ts(d.updated_us),
        "lookback_hops": s["lookback_hops"] if isinstance(s.get("lookback_hops"), int) else LOOKBACK_HOPS[0],
        "modified_at": iso_ts(d.updated_us),
        "o365_tenant_id": None,
        "regions": list(s.get("regions") or ["GLOBAL"]),
        "require_tls_inbound": bool(s.get("require_tls_inbound", False)),
        "require_tls_outbound": bool(s.get("require_tls_outbound", False)),
        "status": d.status,
        "transport": d.next_hop,
    }


class DomainVerificationOut(BaseModel):
    last_checked_at: str | None = None
    status: str
    txt_record_name: str | None = None
    txt_record_value: str | None = None


def _check_ips(values: list[str] | None) -> None:
    for ip in values or ():
        try:
            ipaddress.ip_network(ip.strip(), strict=False)
        except ValueError as exc:
            raise bad_request(f"ip_restrictions: {ip!r} is not an IP address or CIDR block") from exc


def _domain_pk(domain_id: str | int) -> int | None:
    return parse_numeric_id(domain_id)


def load_domain(request: Request, account_id: str, domain_id: str | int) -> Domain:
    """The account's domain by id, or the API's 404: another account's id is as unknown as a made-up one."""
    pk = _domain_pk(domain_id)
    found = services_of(request).domains.get(account_id, pk) if pk is not None else None
    if found is None:
        raise not_found(f"domain {domain_id}")
    return found


def _check_transport(value: str | None) -> None:
    try:
        validate_transport(value or "")
    except ValueError as exc:
        raise bad_request(str(exc), pointer="/transport") from exc


def _updated(request: Request, account_id: str, current: Domain, changes: dict[str, Any], replace: bool) -> Domain:
    actor = require_write(request, account_id).principal
    _check_ips(changes.get("ip_restrictions"))
    _check_transport(changes.get("transport"))
    settings = {} if replace else dict(current.settings)
    if REPORT_ADDRESS in current.settings:  # the operator's (CLI only): the reference's PUT has no such field
        settings[REPORT_ADDRESS] = current.settings[REPORT_ADDRESS]
    settings.update({k: v for k, v in changes.items() if k in DOMAIN_SETTINGS or k == "allowed_delivery_modes"})
    mode = current.mode
    modes = settings.get("allowed_delivery_modes")
    if modes and mode not in modes:
        mode = modes[0]
    updated = services_of(request).domains.update(
        account_id,
        current.id,
        actor=actor,
        mode=mode,
        next_hop=changes.get("transport", current.next_hop),
        settings=settings,
    )
    if updated is None:
        raise not_found(f"domain {current.id}")
    return updated


def _edit_changes(body: BaseModel) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    changes.pop("id", None)
    return changes


def _put_changes(body: BaseModel) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    changes.pop("id", None)
    changes.setdefault("transport", "")
    return changes


def _created(request: Request, account_id: str, body: DomainCreate) -> Domain:
    actor = require_write(request, account_id).principal
    _check_ips(body.ip_restrictions)
    _check_transport(body.transport)
    try:
        name = normalize_domain(body.domain)
    except ValueError as exc:
        raise bad_request(str(exc), pointer="/domain") from exc
    settings = body.model_dump(include={*DOMAIN_SETTINGS, "allowed_delivery_modes"}, exclude_none=True)
    try:
        return services_of(request).domains.add(
            account_id,
            name,
            mode=body.allowed_delivery_modes[0],
            next_hop=body.transport or "",
            settings=settings,
            actor=actor,
        )
    except (AlreadyExists, DomainRefused) as exc:
        raise bad_request(str(exc), pointer="/domain") from exc
    except ValueError as exc:
        raise bad_request(str(exc)) from exc


def _delete(request: Request, account_id: str, domain_id: str | int) -> None:
    actor = require_write(request, account_id).principal
    pk = _domain_pk(domain_id)
    if pk is None or not services_of(request).domains.delete(account_id, pk, actor=actor):
        raise not_found(f"domain {domain_id}")


@router.get("/domains", summary="List protected domains", response_model=PageEnvelope[list[DomainOut]])
def list_domains(
    request: Request,
    account_id: str,
    page: Page = 1,
    per_page: PerPage = 20,
    search: str | None = None,
    order: Literal["domain", "created_at"] | None = None,
    direction: Literal["asc", "desc"] | None = None,
    allowed_delivery_mode: DeliveryModeName | None = None,
    active_delivery_mode: DeliveryModeName | None = None,
    integration_id: str | None = None,
    status: str | None = None,
    domain: Annotated[list[str] | None, Query()] = None,
) -> Any:
    require_read(request, account_id)
    rows = services_of(request).domains.list(account_id)
    if active_delivery_mode:
        rows = [d for d in rows if d.mode == active_delivery_mode]
    out = [domain_out(d) for d in rows]
    try:
        wanted = {normalize_domain(x) for x in domain or () if x.strip()}
    except ValueError as exc:
        raise bad_request(str(exc), pointer="/domain") from exc
    if wanted:
        out = [d for d in out if d["domain"] in wanted]
    if search:
        out = [d for d in out if search.lower() in d["domain"]]
    if allowed_delivery_mode:
        out = [d for d in out if allowed_delivery_mode in d["allowed_delivery_modes"]]
    if integration_id:
        out = [d for d in out if d["integration_id"] == integration_id]
    if status:
        out = [d for d in out if d["status"] == status.upper()]
    if order == "domain":
        out.sort(key=lambda d: d["domain"], reverse=direction == "desc")
    else:
        out.sort(key=lambda d: (d["created_at"], int(d["id"])), reverse=direction == "desc")
    return page_of(out, page, per_page)


@router.post("/domains", summary="Protect a domain", response_model=Envelope[DomainOut])
def create_domain(request: Request, account_id: str, body: DomainCreate) -> Any:
    """A domain added here is PENDING (no mail is accepted for it) until its TXT record is found: see
    `GET /domains/{id}/verification`."""
    require_write(request, account_id)
    return ok(domain_out(_created(request, account_id, body)))


def _bulk_delete_ids(body: Any, query_ids: list[str]) -> list[str | int]:
    """`{"ids": [...]}`, `[{"id": ...}, ...]`, a bare array of ids, or `?id=` repeated. Never "all of them"."""
    values: Any = query_ids or []
    if isinstance(body, dict):
        values = body.get("ids", body.get("deletes", values))
    elif isinstance(body, list):
        values = body
    refs: list[Any] = [v.get("id") if isinstance(v, dict) else v for v in values] if isinstance(values, list) else []
    if not refs or not all(isinstance(r, str | int) and not isinstance(r, bool) for r in refs):
        raise bad_request(
            'name the domains to remove: a body {"ids": ["ID", ...]} (or ?id=ID repeated); nothing was removed',
            pointer="/ids",
        )
    if len(refs) > MAX_BATCH:
        raise bad_request(f"at most {MAX_BATCH} ids per request", pointer="/ids")
    return list(dict.fromkeys(refs))


@router.delete(
    "/domains",
    summary="Stop protecting several domains (deprecated: use the batch endpoint)",
    response_model=Envelope[list[DeletedOut]],
    deprecated=True,
)
def bulk_delete_domains(
    request: Request,
    account_id: str,
    body: Annotated[Any, Body()] = None,
    ids: Annotated[list[str] | None, Query(alias="id", description='Domain ids (or a body {"ids": [...]})')] = None,
) -> Any:
    require_write(request, account_id)
    # all named domains must be the account's before any is removed
    found = {d.id: d for d in (load_domain(request, account_id, ref) for ref in _bulk_delete_ids(body, ids or []))}
    for pk in found:
        _delete(request, account_id, pk)
    return ok([{"id": str(pk)} for pk in found])


@router.post(
    "/domains/batch",
    summary="Delete, edit, replace and protect domains at once",
    response_model=Envelope[DomainBatchOut],
)
def batch_domains(request: Request, account_id: str, body: DomainBatch) -> Any:
    """In the reference's order: deletes, patches, puts, posts. Every id and body is checked before anything
    changes; a post the domain store then refuses (a name already protected) answers 400 after the earlier steps."""
    require_write(request, account_id)
    deleted = {d.id: d for d in (load_domain(request, account_id, ref.id) for ref in body.deletes)}
    for ref in [p.id for p in body.patches] + [p.id for p in body.puts]:
        if load_domain(request, account_id, ref).id in deleted:
            raise bad_request(f"domain {ref} is both deleted and changed in this batch")
    for patch in body.patches:
        _check_ips(patch.ip_restrictions)
    for replacement in body.puts:
        _check_ips(replacement.ip_restrictions)
    names: set[str] = set()
    freed = {d.domain for d in deleted.values()}
    for index, post in enumerate(body.posts):
        _check_ips(post.ip_restrictions)
        try:
            name = normalize_domain(post.domain)
        except ValueError as exc:
            raise bad_request(str(exc), pointer=f"/posts/{index}/domain") from exc
        holder = services_of(request).domains.claimed(name)
        if name in names or (holder is not None and name not in freed):
            raise bad_request(f"domain {name} is already protected", pointer=f"/posts/{index}/domain")
        names.add(name)
    for pk in deleted:
        _delete(request, account_id, pk)
    patched = [
        _updated(request, account_id, load_domain(request, account_id, p.id), _edit_changes(p), False)
        for p in body.patches
    ]
    put = [
        _updated(request, account_id, load_domain(request, account_id, p.id), _put_changes(p), True) for p in body.puts
    ]
    posted = [_created(request, account_id, p) for p in body.posts]
    return ok(
        {
            "deletes": [{"id": str(pk)} for pk in deleted],
            "patches": [domain_out(d) for d in patched],
            "puts": [domain_out(d) for d in put],
            "posts": [domain_out(d) for d in posted],
        }
    )


@router.get("/domains/{domain_id}", summary="Get a protected domain", response_model=Envelope[DomainOut])
def get_domain(request: Request, account_id: str, domain_id: str) -> Any:
    require_read(request, account_id)
    return ok(domain_out(load_domain(request, account_id, domain_id)))


@router.patch("/domains/{domain_id}", summary="Edit a protected domain", response_model=Envelope[DomainOut])
def edit_domain(request: Request, account_id: str, domain_id: str, body: DomainEdit) -> Any:
    require_write(request, account_id)
    current = load_domain(request, account_id, domain_id)
    return ok(domain_out(_updated(request, account_id, current, _edit_changes(body), False)))


@router.put("/domains/{domain_id}", summary="Replace a protected domain's settings", response_model=Envelope[DomainOut])
def replace_domain(request: Request, account_id: str, domain_id: str, body: DomainPut) -> Any:
    require_write(request, account_id)
    current = load_domain(request, account_id, domain_id)
    return ok(domain_out(_updated(request, account_id, current, _put_changes(body), True)))


def _txt_lookup(settings: Settings) -> Any:
    """A resolver with an empty cache, so a record published a moment ago is seen; None when DNS is not set up."""
    if not settings.dns_servers:
        return None
    resolver = DnspythonResolver(settings.dns_servers, settings.dns_port, settings.dns_timeout_seconds)
    return resolver.txt


@router.get(
    "/domains/{domain_id}/verification",
    summary="Get domain verification details",
    response_model=Envelope[DomainVerificationOut],
    responses={204: {"description": "Domain is verified by other means; no TXT record required."}},
)
def get_domain_verification(request: Request, account_id: str, domain_id: str) -> Any:
    """The TXT record that proves control of a domain added through the API; asking checks it (through the
    configured resolver, at most once every few seconds) and activates the domain once the record is there."""
    actor = require_read(request, account_id).principal
    found = load_domain(request, account_id, domain_id)
    if not found.verify_token:
        return Response(status_code=204)
    if found.status == PENDING:
        lookup = _txt_lookup(services_of(request).settings)
        if lookup is not None:
            found = services_of(request).domains.check_txt(account_id, found.id, lookup, actor=actor) or found
    return ok(
        {
            "last_checked_at": iso_ts(found.checked_us) if found.checked_us else None,
            "status": found.status,
            "txt_record_name": found.challenge_name,
            "txt_record_value": found.challenge_value,
        }
    )


@router.delete("/domains/{domain_id}", summary="Stop protecting a domain", response_model=Envelope[DeletedOut])
def delete_domain(request: Request, account_id: str, domain_id: str) -> Any:
    require_write(request, account_id)
    _delete(request, account_id, domain_id)
    return ok({"id": domain_id})
