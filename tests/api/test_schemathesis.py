"""Schemathesis against the app's own OpenAPI document: with a valid token on a SQLite database holding a few
ingested messages, no generated request may get a 5xx, and every answer (errors included) must match the schema
the app publishes. Path ids are real ones half of the time, so handlers past the 404 are exercised too."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from mailsec.api.app import create_app
from mailsec.config import load_settings
from mailsec.evaluate import list_messages
from mailsec.model import Operation
from mailsec.pipeline import process_message
from mailsec.services import Services, open_services
from support import CORPORA, make_eml

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


@dataclass
class Target:
    services: Services
    account: str
    token: str
    refs: list[str]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    data = tmp_path_factory.mktemp("schemathesis")
    services = open_services(load_settings(env={"MAILSEC_RATE_LIMIT_PER_MINUTE": "0"}, data_dir=Path(data)))
    account = services.accounts.create_account("Fuzz").id
    token = services.accounts.create_token(account, can_write=False)
    raws = [
        make_eml(subject="Quarterly report", sender="Alice <alice@finance.example>", to="bob@corp.example"),
        make_eml(
            subject="Verify your account",
            sender="mallory@phish.example",
            html='<a href="https://login.evil.example/x">Verify</a>',
            attachments=[("invoice.pdf", "application/pdf", b"%PDF-1.4 fake")],
        ),
    ]
    for folder in ("phishing_pot", "spamassassin/hard-ham-1"):  # real, messy mail when the corpora are present
        if (CORPORA / folder).is_dir():
            raws += [p.read_bytes() for p in list_messages(CORPORA / folder)[:3]]
    processed = [process_message(services, raw, account) for raw in raws]
    services.messages.add_action(processed[1].pk, Operation.MOVE, folder="JunkEmail", requested_by="fuzz")
    refs = [p.id for p in processed] + [processed[0].postfix_id]
    yield Target(services, account, token, refs)
    services.close()


def test_openapi_conformance(target: Target) -> None:
    """Every operation of the published schema, 25 generated requests each (schemathesis' lazy pytest loader does
    not run on pytest 9 yet, so the operations are driven with their Hypothesis strategies directly)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(target.services))
    headers = {"Authorization": f"Bearer {target.token}"}
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if op.method.upper() == "GET" and "/preview" not in op.path  # preview renders in Chromium: its own tests
    ]
    assert len(operations) >= 7, [op.label for op in operations]
    seen: dict[str, set[int]] = {}

    for operation in operations:

        @given(case=operation.as_strategy(), real_ref=st.booleans(), which=st.integers(0, 20))
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case, real_ref: bool, which: int) -> None:
            params = case.path_parameters if case.path_parameters is not None else {}
            if "account_id" in params:
                params["account_id"] = target.account
            if real_ref and "investigate_id" in params:
                params["investigate_id"] = target.refs[which % len(target.refs)]
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            seen.setdefault(case.operation.label, set()).add(response.status_code)

        run()
    # The handlers were reached (not only auth failures): each operation answered something other than 401/403.
    assert all(codes - {401, 403} for codes in seen.values()), seen
    assert 200 in seen["GET /client/v4/accounts/{account_id}/email-security/investigate/{investigate_id}"], seen
