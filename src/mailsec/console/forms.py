"""HTML forms derived from the API's own request models, so a settings page offers exactly the fields the API
accepts and checks a submission with the same pydantic model (then the API's own validators). A form is a list of
`FormField`; `parse_form` turns posted fields back into the model's input."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

SKIPPED = frozenset(
    {"is_recipient", "is_sender", "is_spoof", "directory_id", "directory_node_id", "external_directory_node_id"}
)
LABELS = {
    "pattern_type": "Pattern type",
    "is_regex": "Pattern is a regular expression",
    "is_email_regex": "E-mail is a regular expression",
    "is_acceptable_sender": "Acceptable sender (exempt from spoof checks)",
    "is_exempt_recipient": "Exempt recipient",
    "is_trusted_sender": "Trusted sender (skips detection)",
    "verify_sender": "Only when the sender is authenticated",
    "is_recent": "Recently registered domain",
    "is_similarity": "Lookalike of a protected domain",
    "name": "Display name",
    "allowed_delivery_modes": "Delivery modes",
    "drop_dispositions": "Drop these dispositions",
    "ip_restrictions": "IP restrictions (one per line)",
    "exclude": "Excluded senders (one per line)",
    "transport": "Next hop (smtp://host:port or lmtp://host:port)",
    "require_tls_inbound": "Require TLS inbound",
    "require_tls_outbound": "Require TLS outbound",
}


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    widget: str  # text, textarea, checkbox, select, choices (several checkboxes), number
    required: bool
    options: tuple[str, ...] = ()

    @property
    def input_id(self) -> str:
        return "f-" + self.name.replace("_", "-")


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The annotation without `None`, and whether None was allowed."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def form_fields(model: type[BaseModel], skip: frozenset[str] = SKIPPED) -> list[FormField]:
    out = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        annotation, optional = _unwrap(info.annotation)
        label = LABELS.get(name) or name.replace("_", " ").capitalize()
        required = info.is_required() and not optional
        origin = typing.get_origin(annotation)
        if annotation is bool:
            out.append(FormField(name, label, "checkbox", False))
        elif origin is Literal:
            out.append(FormField(name, label, "select", required, tuple(str(a) for a in typing.get_args(annotation))))
        elif origin is list:
            (item,) = typing.get_args(annotation) or (str,)
            if typing.get_origin(item) is Literal:
                out.append(FormField(name, label, "choices", required, tuple(str(a) for a in typing.get_args(item))))
            else:
                out.append(FormField(name, label, "textarea", required))
        elif annotation is int:
            out.append(FormField(name, label, "number", required))
        else:
            out.append(FormField(name, label, "text", required))
    return out


def parse_form(fields: list[FormField], form: FormData) -> dict[str, Any]:
    """The posted values in the model's shapes: unchecked boxes are false, empty optional fields are left out."""
    data: dict[str, Any] = {}
    for f in fields:
        if f.widget == "checkbox":
            data[f.name] = form.get(f.name) == "on"
        elif f.widget == "choices":
            data[f.name] = [v for v in form.getlist(f.name) if isinstance(v, str)]
        elif f.widget == "textarea":
            raw = form.get(f.name)
            text = raw if isinstance(raw, str) else ""
            data[f.name] = [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]
        else:
            raw = form.get(f.name)
            value = raw.strip() if isinstance(raw, str) else ""
            if value or f.required:
                data[f.name] = value
    return data


def values_of(fields: list[FormField], current: dict[str, Any]) -> dict[str, Any]:
    """What the form shows for an entry: lists one per line, None as empty."""
    out: dict[str, Any] = {}
    for f in fields:
        value = current.get(f.name)
        if f.widget == "textarea":
            out[f.name] = "\n".join(str(v) for v in value or ())
        elif f.widget == "choices":
            out[f.name] = [str(v) for v in value or ()]
        elif f.widget == "checkbox":
            out[f.name] = bool(value)
        else:
            out[f.name] = "" if value is None else str(value)
    return out


def validation_message(exc: ValidationError, fields: list[FormField]) -> str:
    """One sentence per problem, naming the form's label rather than the JSON field."""
    labels = {f.name: f.label for f in fields}
    parts = []
    for error in exc.errors():
        where = str(error["loc"][0]) if error.get("loc") else ""
        parts.append(f"{labels.get(where, where)}: {error['msg']}")
    return "; ".join(parts)
