"""The quarantine policy (a mailsec extension: `/settings/quarantine_policy`) against a live `mailsec serve`, on SQLite
and PostgreSQL: standard envelope, account scope, write scope, validation, and the CLI editing the same row."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from mailsec.cli import app
from mailsec.config import load_settings
from mailsec.services import Services, open_services
from support import LiveServer, database_url, make_live_server

DEFAULT = ["MALICIOUS", "MALICIOUS-BEC", "SPOOF"]


def path(account: str) -> str:
    return f"/accounts/{account}/email-security/settings/quarantine_policy"


def cli(server: LiveServer, *args: str, ok: bool = True) -> tuple[int, str, str]:
    """`mailsec ...` in this process (a subprocess costs seconds on a busy machine) on the live server's database."""
    env = {"MAILSEC_DATA_DIR": str(server.data_dir), "MAILSEC_DATABASE_URL": server.database_url, "MAILSEC_CONFIG": ""}
    result = CliRunner().invoke(app, list(args), env=env)
    if ok:
        assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live server per engine for the module (a start costs seconds); every test makes its own account."""
    root = tmp_path_factory.mktemp("qpolicy")
    url = database_url(request, root)
    live = make_live_server(root / "live", url)
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def services(server: LiveServer) -> Iterator[Services]:
    """The same database, opened by the test (accounts and tokens without a CLI process each)."""
    svc = open_services(load_settings(env={}, data_dir=server.data_dir, database_url=server.database_url))
    yield svc
    svc.close()


@pytest.fixture
def world(server: LiveServer, services: Services) -> Iterator[tuple[LiveServer, str, str, httpx.Client]]:
    account = services.accounts.create_account("Policy").id
    token = services.accounts.create_token(account)
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        yield server, account, token, client


def test_get_put_delete_round_trip(world: tuple[LiveServer, str, str, httpx.Client]) -> None:
    server, account, _, http = world
    r = http.get(path(account))
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    assert body["result"] == {"dispositions": DEFAULT, "subject_tag": {}, "is_default": True, "modified_at": None}

    put = http.put(
        path(account),
        json={"dispositions": ["malicious", "SPAM", "SPAM"], "subject_tag": {"bulk": "[BULK]", "SUSPICIOUS": "[?]"}},
    )
    assert put.status_code == 200, put.text
    result = put.json()["result"]
    assert result["dispositions"] == ["MALICIOUS", "SPAM"]  # upper-cased, de-duplicated
    assert result["subject_tag"] == {"BULK": "[BULK]", "SUSPICIOUS": "[?]"}
    assert result["is_default"] is False and result["modified_at"].endswith("Z")
    assert http.get(path(account)).json()["result"] == result

    # The CLI reads and edits the same row.
    shown = json.loads(cli(server, "quarantine-policy", "show", "--account", account, "--json")[1])
    assert shown == {"dispositions": ["MALICIOUS", "SPAM"], "subject_tag": result["subject_tag"], "is_default": False}
    cli(server, "quarantine-policy", "set", "--account", account, "MALICIOUS-BEC", "--tag", "SPAM=[Spam] é")
    got = http.get(path(account)).json()["result"]
    assert got["dispositions"] == ["MALICIOUS-BEC"]
    assert got["subject_tag"] == {"BULK": "[BULK]", "SUSPICIOUS": "[?]", "SPAM": "[Spam] é"}  # tags kept, one added

    # Holding nothing is a policy too (deliver everything), distinct from the default.
    empty = http.put(path(account), json={"dispositions": []}).json()["result"]
    assert empty["dispositions"] == [] and empty["subject_tag"] == {} and empty["is_default"] is False

    reset = http.delete(path(account))
    assert reset.status_code == 200
    assert reset.json()["result"]["dispositions"] == DEFAULT and reset.json()["result"]["is_default"] is True


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"dispositions": ["MALICIOUS", "EVIL"]}, "/dispositions/1"),
        ({"dispositions": ["MALICIOUS"], "subject_tag": {"NOPE": "[x]"}}, "/subject_tag/NOPE"),
        ({"dispositions": ["MALICIOUS"], "subject_tag": {"SPAM": "x" * 65}}, "/subject_tag/SPAM"),
        ({"dispositions": ["MALICIOUS"], "subject_tag": {"SPAM": "a\u0000b"}}, "/subject_tag/SPAM"),
        ({"dispositions": "MALICIOUS"}, "/dispositions"),
        ({"subject_tag": {}}, "/dispositions"),
        ({"dispositions": [1, 2]}, None),
    ],
)
def test_bad_bodies_are_400_in_the_envelope(
    world: tuple[LiveServer, str, str, httpx.Client], body: object, pointer: str | None
) -> None:
    _, account, _, http = world
    before = http.get(path(account)).json()["result"]
    r = http.put(path(account), json=body)
    assert r.status_code == 400, r.text
    out = r.json()
    assert out["success"] is False and out["result"] is None and out["errors"][0]["code"] == 1001
    if pointer is not None:
        assert out["errors"][0]["source"]["pointer"] == pointer, out
    if "EVIL" in json.dumps(body):
        assert "EVIL" in out["errors"][0]["message"] and "MALICIOUS-BEC" in out["errors"][0]["message"]
    assert http.get(path(account)).json()["result"] == before  # nothing was written


def test_scopes_and_accounts(world: tuple[LiveServer, str, str, httpx.Client], services: Services) -> None:
    server, account, _, http = world
    read_only = services.accounts.create_token(account, can_write=False)
    other = services.accounts.create_account("Other").id
    other_token = services.accounts.create_token(other)
    ro = {"Authorization": f"Bearer {read_only}"}
    assert httpx.get(server.base_url + path(account), headers=ro).status_code == 200
    denied = httpx.put(server.base_url + path(account), headers=ro, json={"dispositions": ["SPAM"]})
    assert denied.status_code == 403 and denied.json()["errors"][0]["code"] == 10000
    assert httpx.delete(server.base_url + path(account), headers=ro).status_code == 403
    assert httpx.get(server.base_url + path(account)).status_code == 400  # no credentials
    # Another account's credential reaches neither this account's policy nor changes it.
    foreign = {"Authorization": f"Bearer {other_token}"}
    assert httpx.put(server.base_url + path(account), headers=foreign, json={"dispositions": []}).status_code == 403
    assert http.put(path(account), json={"dispositions": ["SPAM"]}).status_code == 200
    theirs = httpx.get(server.base_url + path(other), headers=foreign).json()["result"]
    assert theirs["dispositions"] == DEFAULT and theirs["is_default"] is True
    assert http.get(path(account)).json()["result"]["dispositions"] == ["SPAM"]


def test_cli_refuses_unknown_dispositions(world: tuple[LiveServer, str, str, httpx.Client]) -> None:
    server, account, _, http = world
    code, _, stderr = cli(server, "quarantine-policy", "set", "--account", account, "MALICIOUS", "EVIL", ok=False)
    assert code == 1 and "EVIL" in stderr
    code, _, stderr = cli(server, "quarantine-policy", "set", "--account", account, ok=False)
    assert code == 1 and "--hold-nothing" in stderr
    code, _, stderr = cli(server, "quarantine-policy", "set", "--account", account, "SPAM", "--tag", "x", ok=False)
    assert code == 1 and "DISPOSITION=TAG" in stderr
    assert http.get(path(account)).json()["result"]["is_default"] is True  # nothing was written
    cli(server, "quarantine-policy", "set", "--account", account, "--hold-nothing")
    assert http.get(path(account)).json()["result"]["dispositions"] == []
    assert cli(server, "quarantine-policy", "show", "--account", account)[1].startswith("held: (nothing)")
    cli(server, "quarantine-policy", "reset", "--account", account)
    assert http.get(path(account)).json()["result"]["is_default"] is True
