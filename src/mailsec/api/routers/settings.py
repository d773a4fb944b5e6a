"""`/settings/...`: allow policies, blocked senders, trusted domains, impersonation registry, URL ignore patterns,
content policies and sending domain restrictions (list with filters and pages, create, get, edit, delete, batch),
(protected domains are in `domains.py`). Shapes follow the reference OpenAPI document;
answers carry the superset both SDK generations read (ids are numeric strings: 5.x reads `str`, 4.3 reads `int`).
The write scope is enforced by the app's middleware; every query is scoped to the path's account."""

# No `from __future__ import annotations`: the routes are made in a loop, and FastAPI must see real classes.

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, create_model

from mailsec.api.auth import require_read, require_write, services_of
from mailsec.api.envelope import ERROR_RESPONSES, Envelope, bad_request, not_found, ok
from mailsec.scan.saferegex import check_pattern
from mailsec.store import policies as kinds
from mailsec.store.policies import PolicyNotFound, PolicyRow

T = TypeVar("T")
PREFIX = "/client/v4/accounts/{account_id}/email-security/settings"
router = APIRouter(prefix=PREFIX, tags=["settings"], responses=ERROR_RESPONSES)

PatternType = Literal["EMAIL", "DOMAIN", "IP", "UNKNOWN"]
Provenance = Literal["A1S_INTERNAL", "SNOOPY-CASB_OFFICE_365", "SNOOPY-OFFICE_365", "SNOOPY-GOOGLE_DIRECTORY"]
DeliveryModeName = Literal["DIRECT", "BCC", "JOURNAL", "API", "RETRO_SCAN"]
DispositionName = Literal[
    "MALICIOUS", "MALICIOUS-BEC", "SUSPICIOUS", "SPOOF", "SPAM", "BULK", "ENCRYPTED", "EXTERNAL", "UNKNOWN", "NONE"
]
Region = Literal["GLOBAL", "AU", "DE", "IN", "US"]
MAX_PATTERN = 1024
NULLABLE = frozenset({"comments", "notes", "directory_id", "directory_node_id", "external_directory_node_id"})
_DOMAIN = re.compile(r"^(?=.{1,253}$)(\*\.)?([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}$", re.I)


def iso_ts(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


# -- request bodies ------------------------------------------------------------------------------------------------


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AllowPolicyCreate(RequestBody):
    is_acceptable_sender: bool
    is_exempt_recipient: bool
    is_regex: bool
    is_trusted_sender: bool
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN)
    pattern_type: PatternType
    verify_sender: bool
    comments: str | None = None
    is_recipient: bool | None = None
    is_sender: bool | None = None
    is_spoof: bool | None = None


class AllowPolicyEdit(RequestBody):
    is_acceptable_sender: bool | None = None
    is_exempt_recipient: bool | None = None
    is_regex: bool | None = None
    is_trusted_sender: bool | None = None
    pattern: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN)
    pattern_type: PatternType | None = None
    verify_sender: bool | None = None
    comments: str | None = None
    is_recipient: bool | None = None
    is_sender: bool | None = None
    is_spoof: bool | None = None


class BlockSenderCreate(RequestBody):
    is_regex: bool
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN)
    pattern_type: PatternType
    comments: str | None = None


class BlockSenderEdit(RequestBody):
    is_regex: bool | None = None
    pattern: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN)
    pattern_type: PatternType | None = None
    comments: str | None = None


class TrustedDomainCreate(RequestBody):
    is_recent: bool
    is_regex: bool
    is_similarity: bool
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN)
    comments: str | None = None


class TrustedDomainEdit(RequestBody):
    is_recent: bool | None = None
    is_regex: bool | None = None
    is_similarity: bool | None = None
    pattern: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN)
    comments: str | None = None


class ImpersonationCreate(RequestBody):
    email: str = Field(min_length=1, max_length=MAX_PATTERN)
    is_email_regex: bool
    name: str = Field(min_length=1, max_length=1024)
    comments: str | None = None
    directory_id: int | None = None
    directory_node_id: int | None = None
    external_directory_node_id: str | None = None
    provenance: Provenance | None = None


class ImpersonationEdit(RequestBody):
    email: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN)
    is_email_regex: bool | None = None
    name: str | None = Field(default=None, min_length=1, max_length=1024)
    comments: str | None = None
    directory_id: int | None = None
    directory_node_id: int | None = None
    external_directory_node_id: str | None = None
    provenance: Provenance | None = None


class UrlIgnoreCreate(RequestBody):
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN)
    comments: str | None = None


class UrlIgnoreEdit(RequestBody):
    pattern: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN)
    comments: str | None = None


class ContentPolicyCreate(RequestBody):
    enabled: bool
    name: str = Field(min_length=1, max_length=1024)
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN)
    targets: list[Literal["SUBJECT", "BODY"]] = Field(min_length=1)
    notes: str | None = None


class ContentPolicyEdit(RequestBody):
    enabled: bool | None = None
    name: str | None = Field(default=None, min_length=1, max_length=1024)
    pattern: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN)
    targets: list[Literal["SUBJECT", "BODY"]] | None = None
    notes: str | None = None


class SendingRestrictionCreate(RequestBody):
    domain: str = Field(min_length=1, max_length=255)
    exclude: list[str]
    comments: str | None = None


class SendingRestrictionEdit(RequestBody):
    domain: str | None = Field(default=None, min_length=1, max_length=255)
    exclude: list[str] | None = None
    comments: str | None = None


# An entry id in a batch body: a string (SDK 5.x) or an integer (SDK 4.3), never coerced from true or 1.5.
EntryId = StrictStr | StrictInt


class IdRef(RequestBody):
    id: EntryId


class DeletedOut(BaseModel):
    id: str


class PageInfo(BaseModel):
    count: int
    page: int
    per_page: int
    total_count: int


class PageEnvelope(Envelope[T], Generic[T]):
    result_info: PageInfo


# -- validation of the merged entry --------------------------------------------------------------------------------


def _check_regex(pattern: str, where: str) -> None:
    try:
        check_pattern(pattern)
    except ValueError as exc:
        raise bad_request(f"{where}: {exc}", pointer=f"/{where}") from exc


def _check_domain(value: str, where: str) -> None:
    name = value.strip().rstrip(".")
    try:
        name = name if name.isascii() else name.encode("idna").decode("ascii")
    except UnicodeError:
        name = ""
    if not _DOMAIN.match(name):
        raise bad_request(f"{where}: {value!r} is not a domain name", pointer=f"/{where}")


def _check_email(value: str, where: str) -> None:
    local, at, dom = value.strip().rpartition("@")
    if not at or not local or not dom:
        raise bad_request(f"{where}: {value!r} is not an e-mail address", pointer=f"/{where}")
    _check_domain(dom, where)


def _check_pattern(data: dict[str, Any]) -> None:
    pattern = str(data.get("pattern", ""))
    if data.get("is_regex"):
        _check_regex(pattern, "pattern")
        return
    kind = data.get("pattern_type")
    if kind == "EMAIL":
        _check_email(pattern, "pattern")
    elif kind == "DOMAIN":
        _check_domain(pattern, "pattern")
    elif kind == "IP":
        try:
            ipaddress.ip_network(pattern.strip(), strict=False)
        except ValueError as exc:
            raise bad_request(f"pattern: {pattern!r} is not an IP address or CIDR block", pointer="/pattern") from exc


def _check_trusted(data: dict[str, Any]) -> None:
    if data.get("is_regex"):
        _check_regex(str(data.get("pattern", "")), "pattern")
    else:
        _check_domain(str(data.get("pattern", "")), "pattern")


def _check_impersonation(data: dict[str, Any]) -> None:
    if data.get("is_email_regex"):
        _check_regex(str(data.get("email", "")), "email")
    else:
        _check_email(str(data.get("email", "")), "email")


def _check_content(data: dict[str, Any]) -> None:
    """Content policies and URL ignore patterns are regular expressions."""
    _check_regex(str(data.get("pattern", "")), "pattern")


def _check_restriction(data: dict[str, Any]) -> None:
    _check_domain(str(data.get("domain", "")), "domain")


# -- the table of settings kinds -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    segment: str  # URL path segment
    kind: str  # `policies.kind`
    id_param: str
    create: type[RequestBody]
    edit: type[RequestBody]
    defaults: dict[str, Any]  # every field the answer carries, with its value when never set
    check: Callable[[dict[str, Any]], None]
    filters: tuple[str, ...] = ()  # exact-match list filters
    search: tuple[str, ...] = ("pattern", "comments")
    order: tuple[str, ...] = ("pattern", "created_at")
    mirrors: tuple[tuple[str, str], ...] = ()  # deprecated field ← its replacement
    last_modified: bool = True
    label: str = ""


KINDS = (
    Kind(
        "allow_policies",
        kinds.ALLOW,
        "policy_id",
        AllowPolicyCreate,
        AllowPolicyEdit,
        {
            "comments": None,
            "is_acceptable_sender": False,
            "is_exempt_recipient": False,
            "is_regex": False,
            "is_trusted_sender": False,
            "pattern": "",
            "pattern_type": "UNKNOWN",
            "verify_sender": True,
        },
        _check_pattern,
        filters=(
            "is_exempt_recipient",
            "is_trusted_sender",
            "is_acceptable_sender",
            "verify_sender",
            "pattern_type",
            "pattern",
        ),
        mirrors=(
            ("is_recipient", "is_exempt_recipient"),
            ("is_sender", "is_trusted_sender"),
            ("is_spoof", "is_acceptable_sender"),
        ),
        label="allow policy",
    ),
    Kind(
        "block_senders",
        kinds.BLOCK,
        "pattern_id",
        BlockSenderCreate,
        BlockSenderEdit,
        {"comments": None, "is_regex": False, "pattern": "", "pattern_type": "UNKNOWN"},
        _check_pattern,
        filters=("pattern_type", "pattern"),
        label="blocked sender",
    ),
    Kind(
        "trusted_domains",
        kinds.TRUSTED,
        "trusted_domain_id",
        TrustedDomainCreate,
        TrustedDomainEdit,
        {"comments": None, "is_recent": False, "is_regex": False, "is_similarity": False, "pattern": ""},
        _check_trusted,
        filters=("is_recent", "is_similarity", "pattern"),
        label="trusted domain",
    ),
    Kind(
        "impersonation_registry",
        kinds.IMPERSONATION,
        "impersonation_registry_id",
        ImpersonationCreate,
        ImpersonationEdit,
        {
            "comments": None,
            "directory_id": None,
            "directory_node_id": None,
            "email": "",
            "external_directory_node_id": None,
            "is_email_regex": False,
            "name": "",
            "provenance": None,
        },
        _check_impersonation,
        filters=("provenance",),
        search=("name", "email", "comments"),
        order=("name", "email", "created_at"),
        label="impersonation registry entry",
    ),
    Kind(
        "url_ignore_patterns",
        kinds.URL_IGNORE,
        "pattern_id",
        UrlIgnoreCreate,
        UrlIgnoreEdit,
        {"comments": None, "pattern": ""},
        _check_content,
        label="URL ignore pattern",
    ),
    Kind(
        "content_policies",
        kinds.CONTENT,
        "policy_id",
        ContentPolicyCreate,
        ContentPolicyEdit,
        {"enabled": True, "name": "", "notes": None, "pattern": "", "targets": []},
        _check_content,
        filters=("enabled", "name"),
        search=("name", "pattern", "notes"),
        order=("name", "created_at"),
        last_modified=False,
        label="content policy",
    ),
    Kind(
        "sending_domain_restrictions",
        kinds.SENDING_RESTRICTION,
        "sending_domain_restriction_id",
        SendingRestrictionCreate,
        SendingRestrictionEdit,
        {"comments": None, "domain": "", "exclude": []},
        _check_restriction,
        search=("domain", "comments"),
        order=("domain", "created_at"),
        label="sending domain restriction",
    ),
)


def entry_out(spec: Kind, row: PolicyRow) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(row.id), "created_at": iso_ts(row.created_us)}
    if spec.last_modified:
        out["last_modified"] = iso_ts(row.updated_us)
    out["modified_at"] = iso_ts(row.updated_us)
    for key, default in spec.defaults.items():
        value = row.data.get(key, default)
        out[key] = list(value) if isinstance(value, list) else value
    for old, new in spec.mirrors:
        out[old] = out[new]
    return out


def entry_changes(spec: Kind, body: BaseModel) -> dict[str, Any]:
    """The fields a PATCH sets; a deprecated alias (is_spoof, ...) sets its replacement when that is not given."""
    data = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None or k in NULLABLE}
    for old, new in spec.mirrors:
        if old in data:
            value = data.pop(old)
            data.setdefault(new, value)
    return data


def entry_data(spec: Kind, body: BaseModel) -> dict[str, Any]:
    """A POST/PUT body as a whole entry: what it leaves out takes the kind's default (the console's forms too)."""
    data = entry_changes(spec, body)
    return {k: data.get(k, v) for k, v in spec.defaults.items()}


def checked_entry(spec: Kind, data: dict[str, Any]) -> dict[str, Any]:
    """`data`, once the kind's own rules accept it with the defaults filled in; one check for the API and console."""
    spec.check({**spec.defaults, **data})
    return data


def _matches(spec: Kind, row: PolicyRow, filters: dict[str, Any], search: str | None) -> bool:
    data = {**spec.defaults, **row.data}
    for key, want in filters.items():
        if want is None:
            continue
        have = data.get(key)
        if isinstance(want, str) and isinstance(have, str):
            if have.lower() != want.lower():
                return False
        elif have != want:
            return False
    if search:
        needle = search.lower()
        return any(needle in str(data.get(k) or "").lower() for k in spec.search)
    return True


def page_of(items: list[dict[str, Any]], page: int, per_page: int) -> dict[str, Any]:
    start = (page - 1) * per_page
    chunk = items[start : start + per_page]
    body = ok(chunk)
    body["result_info"] = {"count": len(chunk), "page": page, "per_page": per_page, "total_count": len(items)}
    return body


def _sorted(rows: list[Any], key: Callable[[Any], Any], direction: str | None) -> list[Any]:
    return sorted(rows, key=key, reverse=direction == "desc")


Page = Annotated[int, Query(ge=1, le=10_000_000)]
PerPage = Annotated[int, Query(ge=1, le=1000)]


_OUT_TYPES: dict[str, Any] = {
    "pattern_type": PatternType,
    "provenance": Provenance | None,
    "directory_id": int | None,
    "directory_node_id": int | None,
    "targets": list[Literal["SUBJECT", "BODY"]],
    "exclude": list[str],
}


def output_model(spec: Kind) -> type[BaseModel]:
    """The published shape of one entry: every field always present (SDK 4.3 requires most of them)."""
    fields: dict[str, Any] = {"id": (str, ...), "created_at": (str, ...)}
    if spec.last_modified:
        fields["last_modified"] = (str, ...)
    fields["modified_at"] = (str | None, None)
    for key, default in spec.defaults.items():
        kind = _OUT_TYPES.get(key) or (str | None if default is None else type(default))
        fields[key] = (kind, ...)
    for old, _new in spec.mirrors:
        fields[old] = (bool, ...)
    name = "".join(part.title() for part in spec.kind.split("_"))
    return create_model(name, **fields)


def _register(spec: Kind) -> None:
    base = f"/{spec.segment}"
    item = f"/{spec.segment}/{{{spec.id_param}}}"
    create_model_ = spec.create
    edit_model = spec.edit
    patch_item = create_model(f"{edit_model.__name__}BatchItem", __base__=edit_model, id=(EntryId, ...))
    put_item = create_model(f"{create_model_.__name__}BatchItem", __base__=create_model_, id=(EntryId, ...))
    batch_body = create_model(
        f"{create_model_.__name__.removesuffix('Create')}Batch",
        __base__=RequestBody,
        deletes=(list[IdRef], Field(default_factory=list, max_length=1000)),
        patches=(list[patch_item], Field(default_factory=list, max_length=1000)),  # type: ignore[valid-type]
        puts=(list[put_item], Field(default_factory=list, max_length=1000)),  # type: ignore[valid-type]
        posts=(list[create_model_], Field(default_factory=list, max_length=1000)),  # type: ignore[valid-type]
    )
    what = spec.label
    out_model = output_model(spec)
    batch_out = create_model(
        f"{out_model.__name__}BatchResult",
        deletes=(list[DeletedOut], ...),
        patches=(list[out_model], ...),  # type: ignore[valid-type]
        puts=(list[out_model], ...),  # type: ignore[valid-type]
        posts=(list[out_model], ...),  # type: ignore[valid-type]
    )
    one: Any = Envelope[out_model]  # type: ignore[valid-type]
    many: Any = PageEnvelope[list[out_model]]  # type: ignore[valid-type]

    def load(request: Request, account_id: str, entry_id: str) -> PolicyRow:
        row = services_of(request).policies.get(account_id, spec.kind, entry_id)
        if row is None:
            raise not_found(f"{what} {entry_id}")
        return row

    @router.get(base, summary=f"List {what}s", name=f"list_{spec.segment}", response_model=many)
    def list_entries(
        request: Request,
        account_id: str,
        page: Page = 1,
        per_page: PerPage = 20,
        search: str | None = None,
        order: str | None = None,
        direction: Literal["asc", "desc"] | None = None,
    ) -> Any:
        require_read(request, account_id)
        if order is not None and order not in spec.order:
            raise bad_request(f"order must be one of {', '.join(spec.order)}", pointer="/order")
        filters: dict[str, Any] = {}
        for key in spec.filters:
            raw = request.query_params.get(key)
            if raw is None or raw == "":
                continue
            if isinstance(spec.defaults.get(key), bool):
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise bad_request(f"{key} must be true or false", pointer=f"/{key}")
                filters[key] = raw.lower() in ("true", "1")
            else:
                filters[key] = raw
        rows = [
            r for r in services_of(request).policies.list(account_id, spec.kind) if _matches(spec, r, filters, search)
        ]
        if order and order != "created_at":
            rows = _sorted(rows, lambda r: (str(r.data.get(order) or "").lower(), r.id), direction)
        else:
            rows = _sorted(rows, lambda r: (r.created_us, r.id), direction)
        return page_of([entry_out(spec, r) for r in rows], page, per_page)

    @router.post(base, summary=f"Create a {what}", name=f"create_{spec.segment}", response_model=one)
    def create_entry(request: Request, account_id: str, body: create_model_) -> Any:  # type: ignore[valid-type]
        require_write(request, account_id)
        data = checked_entry(spec, entry_data(spec, body))
        return ok(entry_out(spec, services_of(request).policies.create(account_id, spec.kind, data)))

    @router.post(
        f"{base}/batch",
        summary=f"Delete, edit, replace and create {what}s at once",
        name=f"batch_{spec.segment}",
        response_model=Envelope[batch_out],  # type: ignore[valid-type]
    )
    def batch_entries(request: Request, account_id: str, body: batch_body) -> Any:  # type: ignore[valid-type]
        require_write(request, account_id)
        repo = services_of(request).policies
        batch: Any = body
        patches = []
        for p in batch.patches:
            current = repo.get(account_id, spec.kind, p.id)
            if current is None:
                raise not_found(f"{what} {p.id}")
            changes = entry_changes(spec, p)
            changes.pop("id", None)
            checked_entry(spec, {**current.data, **changes})
            patches.append((p.id, changes))
        puts = []
        for p in batch.puts:
            full = entry_data(spec, p)
            puts.append((p.id, checked_entry(spec, full)))
        posts = [checked_entry(spec, entry_data(spec, p)) for p in batch.posts]
        try:
            result = repo.batch(account_id, spec.kind, [d.id for d in batch.deletes], patches, puts, posts)
        except PolicyNotFound as exc:
            raise not_found(f"{what} {exc.entry_id}") from exc
        return ok(
            {
                "deletes": [{"id": str(i)} for i in result.deletes],
                "patches": [entry_out(spec, r) for r in result.patches],
                "puts": [entry_out(spec, r) for r in result.puts],
                "posts": [entry_out(spec, r) for r in result.posts],
            }
        )

    id_doc = {"parameters": [{"name": spec.id_param, "in": "path", "required": True, "schema": {"type": "string"}}]}

    def entry_id_of(request: Request) -> str:
        return str(request.path_params[spec.id_param])

    @router.get(item, summary=f"Get a {what}", name=f"get_{spec.segment}", openapi_extra=id_doc, response_model=one)
    def get_entry(request: Request, account_id: str) -> Any:
        require_read(request, account_id)
        return ok(entry_out(spec, load(request, account_id, entry_id_of(request))))

    @router.patch(item, summary=f"Edit a {what}", name=f"edit_{spec.segment}", openapi_extra=id_doc, response_model=one)
    def edit_entry(request: Request, account_id: str, body: edit_model) -> Any:  # type: ignore[valid-type]
        require_write(request, account_id)
        entry_id = entry_id_of(request)
        current = load(request, account_id, entry_id)
        changes = entry_changes(spec, body)
        checked_entry(spec, {**current.data, **changes})
        row = services_of(request).policies.update(account_id, spec.kind, entry_id, changes)
        if row is None:
            raise not_found(f"{what} {entry_id}")
        return ok(entry_out(spec, row))

    @router.delete(
        item,
        summary=f"Delete a {what}",
        name=f"delete_{spec.segment}",
        openapi_extra=id_doc,
        response_model=Envelope[DeletedOut],
    )
    def delete_entry(request: Request, account_id: str) -> Any:
        require_write(request, account_id)
        entry_id = entry_id_of(request)
        if not services_of(request).policies.delete(account_id, spec.kind, entry_id):
            raise not_found(f"{what} {entry_id}")
        return ok({"id": entry_id})


for _spec in KINDS:
    _register(_spec)
