"""Settings pages: every policy kind of the settings API, protected domains, the quarantine policy and API tokens.
Each write goes through the API's own request models, validators and handlers (with the session's grant as the
request's credential), so the console can do no more and no less than the API; deletions ask for confirmation on
a page of their own (no script needed). Read-only sign-ins see the lists without any form."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from mailsec.api.envelope import APIError
from mailsec.api.routers import domains as domain_api
from mailsec.api.routers import quarantine_policy as quarantine_api
from mailsec.api.routers import settings as settings_api
from mailsec.console.forms import FormField, form_fields, parse_form, validation_message, values_of
from mailsec.console.web import ConsoleRefusal, Viewer, checked_form, render, services_of, viewer
from mailsec.store import policies as policy_store

router = APIRouter(include_in_schema=False)
KINDS = {spec.segment: spec for spec in settings_api.KINDS}
TITLES = {
    "allow_policies": "Allow policies",
    "block_senders": "Blocked senders",
    "trusted_domains": "Trusted domains",
    "impersonation_registry": "Impersonation registry (display names)",
    "url_ignore_patterns": "URL ignore patterns",
    "content_policies": "Content policies",
    "sending_domain_restrictions": "Sending domain restrictions",
}
DONE = {
    "created": "Created.",
    "saved": "Saved.",
    "deleted": "Deleted.",
    "revoked": "Token revoked.",
    "reset": "Back to the default policy.",
}
DOMAIN_CREATE = form_fields(domain_api.DomainCreate, frozenset({"integration_id", "regions", "folder"}))
DOMAIN_EDIT = [f for f in DOMAIN_CREATE if f.name != "domain"]


def _spec(segment: str) -> settings_api.Kind:
    spec = KINDS.get(segment)
    if spec is None:
        raise ConsoleRefusal(404, "There is no such settings page.")
    return spec


def _as_api(request: Request, who: Viewer) -> None:
    """The API's handlers and `require_write` read the credential from the request: hand them the session's."""
    request.state.grant = who.grant


def _render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    return render(request, template, status=status, titles=TITLES, **context)


def _done(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


def _back(path: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?done={quote(done)}", status_code=303)


def _validate(model: type[BaseModel], data: dict[str, Any], fields: list[FormField]) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _FormProblem(validation_message(exc, fields)) from exc


class _FormProblem(Exception):
    """A submission the page shows again, with the sentence that says what to fix."""


def _problem(exc: Exception) -> str:
    return exc.message if isinstance(exc, APIError) else str(exc)


# -- index ---------------------------------------------------------------------------------------------------------


@router.get("/a/{account_id}/settings")
async def settings_index(request: Request, account_id: str) -> Response:
    who = await viewer(request, account_id)
    services = services_of(request)

    def counts() -> dict[str, int]:
        out = {seg: len(services.policies.list(account_id, spec.kind)) for seg, spec in KINDS.items()}
        out["domains"] = len(services.domains.list(account_id))
        out["tokens"] = len([t for t in services.accounts.list_tokens(account_id) if not t.revoked])
        return out

    return _render(request, "settings_index.html", who=who, counts=await run_in_threadpool(counts))


# -- policies (every kind of the settings API) ----------------------------------------------------------------------


def _entry_values(spec: settings_api.Kind, row: policy_store.PolicyRow) -> dict[str, Any]:
    return settings_api.entry_out(spec, row)


def _kind_page(
    request: Request, who: Viewer, spec: settings_api.Kind, status: int = 200, error: str | None = None,
    form: dict[str, Any] | None = None,
) -> Response:  # fmt: skip
    rows = services_of(request).policies.list(who.account_id, spec.kind)
    entries = [_entry_values(spec, r) for r in sorted(rows, key=lambda r: (r.created_us, r.id))]
    fields = form_fields(spec.create)
    return _render(
        request,
        "settings_kind.html",
        status=status,
        who=who,
        spec=spec,
        title=TITLES[spec.segment],
        entries=entries,
        columns=[f for f in fields if f.widget != "textarea"][:5],
        fields=fields,
        values=form if form is not None else values_of(fields, spec.defaults),
        error=error,
        done=_done(request),
    )


@router.get("/a/{account_id}/settings/policies/{segment}")
async def kind_page(request: Request, account_id: str, segment: str) -> Response:
    who = await viewer(request, account_id)
    spec = _spec(segment)
    return await run_in_threadpool(_kind_page, request, who, spec)


@router.post("/a/{account_id}/settings/policies/{segment}")
async def kind_create(request: Request, account_id: str, segment: str) -> Response:
    who = await viewer(request, account_id)
    spec = _spec(segment)
    form = await checked_form(request, who)
    fields = form_fields(spec.create)
    data = parse_form(fields, form)

    def create() -> None:
        body = _validate(spec.create, data, fields)
        full = settings_api.checked_entry(spec, settings_api.entry_data(spec, body))
        services_of(request).policies.create(account_id, spec.kind, full)

    try:
        await run_in_threadpool(create)
    except (_FormProblem, APIError) as exc:
        shown = values_of(fields, {**spec.defaults, **data})
        return await run_in_threadpool(_kind_page, request, who, spec, 200, _problem(exc), shown)
    return _back(f"/a/{account_id}/settings/policies/{segment}", "created")


def _load_entry(request: Request, who: Viewer, spec: settings_api.Kind, entry_id: str) -> policy_store.PolicyRow:
    row = services_of(request).policies.get(who.account_id, spec.kind, entry_id)
    if row is None:
        raise ConsoleRefusal(404, f"There is no {spec.label} {entry_id} in this account.")
    return row


def _entry_page(
    request: Request, who: Viewer, spec: settings_api.Kind, row: policy_store.PolicyRow, status: int = 200,
    error: str | None = None, form: dict[str, Any] | None = None,
) -> Response:  # fmt: skip
    fields = form_fields(spec.edit)
    current = _entry_values(spec, row)
    return _render(
        request,
        "settings_entry.html",
        status=status,
        who=who,
        spec=spec,
        title=TITLES[spec.segment],
        entry=current,
        fields=fields,
        values=form if form is not None else values_of(fields, current),
        error=error,
        done=_done(request),
        base=f"/a/{who.account_id}/settings/policies/{spec.segment}",
    )


@router.get("/a/{account_id}/settings/policies/{segment}/{entry_id}")
async def entry_page(request: Request, account_id: str, segment: str, entry_id: str) -> Response:
    who = await viewer(request, account_id)
    spec = _spec(segment)
    row = await run_in_threadpool(_load_entry, request, who, spec, entry_id)
    return await run_in_threadpool(_entry_page, request, who, spec, row)


@router.post("/a/{account_id}/settings/policies/{segment}/{entry_id}")
async def entry_save(request: Request, account_id: str, segment: str, entry_id: str) -> Response:
    who = await viewer(request, account_id)
    spec = _spec(segment)
    form = await checked_form(request, who)
    fields = form_fields(spec.edit)
    data = parse_form(fields, form)
    row = await run_in_threadpool(_load_entry, request, who, spec, entry_id)

    def save() -> None:
        body = _validate(spec.edit, data, fields)
        changes = settings_api.entry_changes(spec, body)
        settings_api.checked_entry(spec, {**row.data, **changes})
        if services_of(request).policies.update(account_id, spec.kind, entry_id, changes) is None:
            raise ConsoleRefusal(404, f"There is no {spec.label} {entry_id} in this account.")

    try:
        await run_in_threadpool(save)
    except (_FormProblem, APIError) as exc:
        shown = values_of(fields, {**spec.defaults, **data})
        return await run_in_threadpool(_entry_page, request, who, spec, row, 200, _problem(exc), shown)
    return _back(f"/a/{account_id}/settings/policies/{segment}/{entry_id}", "saved")


@router.get("/a/{account_id}/settings/policies/{segment}/{entry_id}/delete")
async def entry_delete_confirm(request: Request, account_id: str, segment: str, entry_id: str) -> Response:
    who = await viewer(request, account_id)
    spec = _spec(segment)
    row = await run_in_threadpool(_load_entry, request, who, spec, entry_id)
    entry = _entry_values(spec, row)
    what = str(entry.get("pattern") or entry.get("email") or entry.get("name") or entry.get("domain") or entry_id)
    return _render(
        request,
        "confirm.html",
        who=who,
        title=f"Delete {spec.label}",
        question=f"Delete the {spec.label} “{what}”? Mail scanned from now on no longer uses it.",
        action=f"/a/{account_id}/settings/policies/{segment}/{entry_id}/delete",
        button="Delete",
        cancel=f"/a/{account_id}/settings/policies/{segment}",
    )


@router.post("/a/{account_id}/settings/policies/{segment}/{entry_id}/delete")
async def entry_delete(request: Request, account_id: str, segment: str, entry_id: str) -> Response:
    who = await viewer(request, account_id)
    spec = _spec(segment)
    await checked_form(request, who)
    if not await run_in_threadpool(services_of(request).policies.delete, account_id, spec.kind, entry_id):
        raise ConsoleRefusal(404, f"There is no {spec.label} {entry_id} in this account.")
    return _back(f"/a/{account_id}/settings/policies/{segment}", "deleted")


# -- protected domains ------------------------------------------------------------------------------------------------


def _domains_page(
    request: Request, who: Viewer, status: int = 200, error: str | None = None, form: dict[str, Any] | None = None
) -> Response:
    rows = [domain_api.domain_out(d) for d in services_of(request).domains.list(who.account_id)]
    defaults = {"allowed_delivery_modes": ["DIRECT"]}
    return _render(
        request,
        "settings_domains.html",
        status=status,
        who=who,
        domains=rows,
        fields=DOMAIN_CREATE,
        values=form if form is not None else values_of(DOMAIN_CREATE, defaults),
        error=error,
        done=_done(request),
    )


@router.get("/a/{account_id}/settings/domains")
async def domains_page(request: Request, account_id: str) -> Response:
    who = await viewer(request, account_id)
    return await run_in_threadpool(_domains_page, request, who)


@router.post("/a/{account_id}/settings/domains")
async def domain_create(request: Request, account_id: str) -> Response:
    who = await viewer(request, account_id)
    form = await checked_form(request, who)
    data = parse_form(DOMAIN_CREATE, form)
    _as_api(request, who)

    def create() -> None:
        body = _validate(domain_api.DomainCreate, data, DOMAIN_CREATE)
        domain_api.create_domain(request, account_id, body)  # type: ignore[arg-type]

    try:
        await run_in_threadpool(create)
    except (_FormProblem, APIError) as exc:
        shown = values_of(DOMAIN_CREATE, data)
        return await run_in_threadpool(_domains_page, request, who, 200, _problem(exc), shown)
    return _back(f"/a/{account_id}/settings/domains", "created")


def _domain_page(
    request: Request, who: Viewer, domain_id: str, status: int = 200, error: str | None = None,
    form: dict[str, Any] | None = None,
) -> Response:  # fmt: skip
    _as_api(request, who)
    try:
        current = domain_api.domain_out(domain_api.load_domain(request, who.account_id, domain_id))
    except APIError as exc:
        raise ConsoleRefusal(404, f"There is no domain {domain_id} in this account.") from exc
    return _render(
        request,
        "settings_domain.html",
        status=status,
        who=who,
        domain=current,
        fields=DOMAIN_EDIT,
        values=form if form is not None else values_of(DOMAIN_EDIT, current),
        error=error,
        done=_done(request),
    )


@router.get("/a/{account_id}/settings/domains/{domain_id}")
async def domain_page(request: Request, account_id: str, domain_id: str) -> Response:
    who = await viewer(request, account_id)
    return await run_in_threadpool(_domain_page, request, who, domain_id)


@router.post("/a/{account_id}/settings/domains/{domain_id}")
async def domain_save(request: Request, account_id: str, domain_id: str) -> Response:
    who = await viewer(request, account_id)
    form = await checked_form(request, who)
    data = parse_form(DOMAIN_EDIT, form)
    data.setdefault("transport", "")
    _as_api(request, who)

    def save() -> None:
        body = _validate(domain_api.DomainEdit, data, DOMAIN_EDIT)
        domain_api.edit_domain(request, account_id, domain_id, body)  # type: ignore[arg-type]

    try:
        await run_in_threadpool(save)
    except (_FormProblem, APIError) as exc:
        if isinstance(exc, APIError) and exc.status == 404:
            raise ConsoleRefusal(404, f"There is no domain {domain_id} in this account.") from exc
        shown = values_of(DOMAIN_EDIT, data)
        return await run_in_threadpool(_domain_page, request, who, domain_id, 200, _problem(exc), shown)
    return _back(f"/a/{account_id}/settings/domains/{domain_id}", "saved")


@router.get("/a/{account_id}/settings/domains/{domain_id}/delete")
async def domain_delete_confirm(request: Request, account_id: str, domain_id: str) -> Response:
    who = await viewer(request, account_id)
    _as_api(request, who)
    try:
        found = await run_in_threadpool(domain_api.load_domain, request, account_id, domain_id)
    except APIError as exc:
        raise ConsoleRefusal(404, f"There is no domain {domain_id} in this account.") from exc
    return _render(
        request,
        "confirm.html",
        who=who,
        title="Stop protecting a domain",
        question=f"Stop protecting {found.domain}? The gateway refuses its mail from then on.",
        action=f"/a/{account_id}/settings/domains/{domain_id}/delete",
        button="Stop protecting",
        cancel=f"/a/{account_id}/settings/domains",
    )


@router.post("/a/{account_id}/settings/domains/{domain_id}/delete")
async def domain_delete(request: Request, account_id: str, domain_id: str) -> Response:
    who = await viewer(request, account_id)
    await checked_form(request, who)
    _as_api(request, who)
    try:
        await run_in_threadpool(domain_api.delete_domain, request, account_id, domain_id)
    except APIError as exc:
        raise ConsoleRefusal(404, f"There is no domain {domain_id} in this account.") from exc
    return _back(f"/a/{account_id}/settings/domains", "deleted")


# -- quarantine policy ---------------------------------------------------------------------------------------------


def _quarantine_page(request: Request, who: Viewer, status: int = 200, error: str | None = None) -> Response:
    current = quarantine_api.policy_out(quarantine_api.current_policy(request, who.account_id))
    return _render(
        request,
        "settings_quarantine.html",
        status=status,
        who=who,
        policy=current,
        dispositions=policy_store.QUARANTINE_VOCABULARY,
        error=error,
        done=_done(request),
    )


@router.get("/a/{account_id}/settings/quarantine")
async def quarantine_policy_page(request: Request, account_id: str) -> Response:
    who = await viewer(request, account_id)
    return await run_in_threadpool(_quarantine_page, request, who)


@router.post("/a/{account_id}/settings/quarantine")
async def quarantine_policy_save(request: Request, account_id: str) -> Response:
    who = await viewer(request, account_id)
    form = await checked_form(request, who)
    _as_api(request, who)
    held = [v for v in form.getlist("dispositions") if isinstance(v, str)]
    tags = {}
    for d in policy_store.QUARANTINE_VOCABULARY:
        tag = form.get(f"tag-{d}")
        if isinstance(tag, str) and tag.strip():
            tags[d] = tag.strip()

    def save() -> None:
        body = quarantine_api.QuarantinePolicyPut(dispositions=held, subject_tag=tags)
        quarantine_api.put_quarantine_policy(request, account_id, body)

    try:
        await run_in_threadpool(save)
    except (ValidationError, APIError) as exc:
        message = _problem(exc) if isinstance(exc, APIError) else validation_message(exc, [])
        return await run_in_threadpool(_quarantine_page, request, who, 200, message)
    return _back(f"/a/{account_id}/settings/quarantine", "saved")


@router.post("/a/{account_id}/settings/quarantine/reset")
async def quarantine_policy_reset(request: Request, account_id: str) -> Response:
    who = await viewer(request, account_id)
    await checked_form(request, who)
    _as_api(request, who)
    await run_in_threadpool(quarantine_api.reset_quarantine_policy, request, account_id)
    return _back(f"/a/{account_id}/settings/quarantine", "reset")


# -- API tokens --------------------------------------------------------------------------------------------------------


def _tokens_page(
    request: Request, who: Viewer, status: int = 200, error: str | None = None, secret: str | None = None
) -> Response:
    tokens = services_of(request).accounts.list_tokens(who.account_id)
    return _render(
        request,
        "settings_tokens.html",
        status=status,
        who=who,
        tokens=tokens,
        error=error,
        secret=secret,
        done=_done(request),
    )


@router.get("/a/{account_id}/settings/tokens")
async def tokens_page(request: Request, account_id: str) -> Response:
    who = await viewer(request, account_id)
    return await run_in_threadpool(_tokens_page, request, who)


@router.post("/a/{account_id}/settings/tokens")
async def token_create(request: Request, account_id: str) -> Response:
    """The new token's secret is in this answer only (never stored in clear, never in a URL)."""
    who = await viewer(request, account_id)
    form = await checked_form(request, who)
    raw_name = form.get("name")
    name = raw_name.strip()[:200] if isinstance(raw_name, str) else ""
    if not name:
        return await run_in_threadpool(_tokens_page, request, who, 200, "Name: give the token a name.")
    read_only = form.get("read_only") == "on"
    secret = await run_in_threadpool(services_of(request).accounts.create_token, account_id, not read_only, name)
    return await run_in_threadpool(_tokens_page, request, who, 200, None, secret)


def _token_of(request: Request, account_id: str, token_id: str) -> Any:
    for token in services_of(request).accounts.list_tokens(account_id):
        if token.id == token_id.strip().lower():
            return token
    raise ConsoleRefusal(404, f"There is no token {token_id} in this account.")


@router.get("/a/{account_id}/settings/tokens/{token_id}/revoke")
async def token_revoke_confirm(request: Request, account_id: str, token_id: str) -> Response:
    who = await viewer(request, account_id)
    token = await run_in_threadpool(_token_of, request, account_id, token_id)
    own = who.principal == f"token:{token.id}"
    return _render(
        request,
        "confirm.html",
        who=who,
        title="Revoke a token",
        question=f"Revoke the token “{token.name or token.id}”? Every script using it stops working at once."
        + (" This is the token you signed in with: you will be signed out." if own else ""),
        action=f"/a/{account_id}/settings/tokens/{token.id}/revoke",
        button="Revoke",
        cancel=f"/a/{account_id}/settings/tokens",
    )


@router.post("/a/{account_id}/settings/tokens/{token_id}/revoke")
async def token_revoke(request: Request, account_id: str, token_id: str) -> Response:
    who = await viewer(request, account_id)
    await checked_form(request, who)
    token = await run_in_threadpool(_token_of, request, account_id, token_id)
    await run_in_threadpool(services_of(request).accounts.revoke_token, token.id)
    return _back(f"/a/{account_id}/settings/tokens", "revoked")
