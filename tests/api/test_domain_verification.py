"""Protected domains through the API against a live `mailsec serve` and a real DNS server on loopback: an API claim
is PENDING and takes no mail until its TXT record is published; another account's domains, their subdomains and
public suffixes are refused without naming the owner; the operator verifies from the CLI; transports are checked."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cloudflare
import httpx
import pytest
from api_helpers import server_services

from mailsec.services import Services
from support import LiveServer, make_live_server, sdk_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scan"))  # the loopback DNS server helper
from dns_zone import Zones, dns_server

MODES = {"allowed_delivery_modes": ["BCC"], "drop_dispositions": [], "ip_restrictions": [], "regions": ["GLOBAL"]}


@dataclass
class Site:
    live: LiveServer
    services: Services
    zones: Zones
    account: str
    token: str
    other: str
    other_token: str

    def url(self, path: str, account: str | None = None) -> str:
        return f"{self.live.base_url}/accounts/{account or self.account}/email-security/settings/{path}"

    def post_domain(
        self, name: str, token: str | None = None, account: str | None = None, **extra: str
    ) -> httpx.Response:
        body = {**MODES, "domain": name, **extra}
        return httpx.post(self.url("domains", account), json=body, headers=self.auth(token))

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("domains")
    zones = Zones()
    with dns_server(zones) as (host, port):
        live = make_live_server(
            tmp / "live", f"sqlite:///{tmp / 'mailsec.db'}", MAILSEC_DNS_SERVERS=host, MAILSEC_DNS_PORT=str(port)
        )
        services = server_services(live)
        account = services.accounts.create_account("Mine").id
        other = services.accounts.create_account("Theirs").id
        live.start()
        try:
            yield Site(
                live,
                services,
                zones,
                account,
                services.accounts.create_token(account),
                other,
                services.accounts.create_token(other),
            )
        finally:
            live.stop()
            services.close()


def test_api_claim_is_pending_until_its_txt_record_is_published(site: Site) -> None:
    created = site.post_domain("proof.example")
    assert created.status_code == 200, created.text
    result = created.json()["result"]
    assert result["status"] == "PENDING"
    assert site.services.domains.owner_of("ceo@proof.example") is None  # the gateway refuses its mail
    verification = httpx.get(site.url(f"domains/{result['id']}/verification"), headers=site.auth())
    assert verification.status_code == 200
    info = verification.json()["result"]
    assert info["status"] == "PENDING" and info["txt_record_name"] == "_mailsec-challenge.proof.example"
    assert info["txt_record_value"].startswith("mailsec-domain-verification=") and info["last_checked_at"]
    site.zones.txt(info["txt_record_name"], "something else")
    site.zones.txt(info["txt_record_name"], info["txt_record_value"])
    time.sleep(10.2)  # one TXT lookup per domain every 10 s
    verified = httpx.get(site.url(f"domains/{result['id']}/verification"), headers=site.auth()).json()["result"]
    assert verified["status"] == "ACTIVE"
    assert ("_mailsec-challenge.proof.example", "TXT") in site.zones.queries
    owner = site.services.domains.owner_of("ceo@proof.example")
    assert owner is not None and owner.account_id == site.account
    got = sdk_client(site.live.base_url, site.token).email_security.settings.domains.get(
        result["id"], account_id=site.account
    )
    assert got is not None and got.status == "ACTIVE"
    # the other account can neither see it nor claim it, its subdomains, or a parent
    foreign = httpx.get(
        site.url(f"domains/{result['id']}/verification", site.other), headers=site.auth(site.other_token)
    )
    assert foreign.status_code == 404
    for name in ("proof.example", "mail.proof.example"):
        refused = site.post_domain(name, site.other_token, site.other)
        assert refused.status_code == 400 and refused.json()["errors"][0]["source"]["pointer"] == "/domain"
        assert site.account not in refused.text and "Mine" not in refused.text


def test_operator_verified_domain_answers_204(site: Site, tmp_path: Path) -> None:
    created = site.post_domain("operator.example").json()["result"]
    done = site.live.cli("domain", "verify", "--account", site.account, "operator.example")
    assert done.stdout.strip().splitlines()[-1] == created["id"], done.stderr
    answer = httpx.get(site.url(f"domains/{created['id']}/verification"), headers=site.auth())
    assert answer.status_code == 204 and answer.content == b""
    cli_added = site.live.last_line(
        "domain", "add", "--account", site.account, "cli.example", "--mode", "BCC"
    )  # the operator's own add is verified at once
    assert httpx.get(site.url(f"domains/{cli_added}/verification"), headers=site.auth()).status_code == 204
    assert site.services.domains.owner_of("a@cli.example") is not None


@pytest.mark.parametrize("name", ["com", "co.uk", "example", "evil\x00.example", "a\u202eb.example"])
def test_public_suffixes_and_control_characters_are_a_400(site: Site, name: str) -> None:
    answer = site.post_domain(name)
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"][0]["source"]["pointer"] == "/domain"


@pytest.mark.parametrize("transport", ["file:///etc/passwd", "http://169.254.169.254/", "smtp://mx.example/x", "a b"])
def test_transport_must_be_a_mail_hop(site: Site, transport: str) -> None:
    refused = site.post_domain("hop.example", transport=transport)
    assert refused.status_code == 400 and refused.json()["errors"][0]["source"]["pointer"] == "/transport"
    made = site.post_domain("hop2.example", transport="smtp://mx.hop2.example:25").json()["result"]
    d = sdk_client(site.live.base_url, site.token).email_security.settings.domains
    with pytest.raises(cloudflare.BadRequestError):
        d.edit(made["id"], account_id=site.account, transport=transport)
    assert d.get(made["id"], account_id=site.account).transport == "smtp://mx.hop2.example:25"  # type: ignore[union-attr]
    d.delete(made["id"], account_id=site.account)
