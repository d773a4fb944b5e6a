"""Through the API, one account cannot take another's mail: claiming its subdomains or a TLD is refused, and a
domain the account has not proven (PENDING) gets no mail from the gateway until it is verified. Real SMTP."""

from __future__ import annotations

import smtplib

import httpx
from gw_support import Gateway

BODY = {"allowed_delivery_modes": ["DIRECT"], "drop_dispositions": [], "ip_restrictions": [], "regions": ["GLOBAL"]}


def rcpt(gateway: Gateway, address: str) -> int:
    with smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=30) as smtp:
        smtp.ehlo("client.test")
        smtp.mail("someone@sender.example")
        code, _ = smtp.rcpt(address)
        smtp.rset()
        return code


def test_another_account_cannot_claim_or_receive_corp_mail(gateway: Gateway) -> None:
    url = f"{gateway.server.base_url}/accounts/{gateway.hold_account}/email-security/settings/domains"
    intruder = {"Authorization": f"Bearer {gateway.hold_token}"}
    for name in ("mail.corp.example", "corp.example", "example"):
        refused = httpx.post(
            url, json={**BODY, "domain": name, "transport": "smtp://mx.evil.example"}, headers=intruder
        )
        assert refused.status_code == 400, refused.text
        assert gateway.account not in refused.text
    assert rcpt(gateway, "ceo@mail.corp.example") == 250  # still the corp account's
    owner = gateway.services.domains.owner_of("ceo@mail.corp.example")
    assert owner is not None and owner.account_id == gateway.account

    created = httpx.post(url, json={**BODY, "domain": "claimed.example"}, headers=intruder)
    assert created.status_code == 200 and created.json()["result"]["status"] == "PENDING"
    assert rcpt(gateway, "anyone@claimed.example") == 550  # not proven: no mail
    gateway.server.cli("domain", "verify", "--account", gateway.hold_account, "claimed.example")
    assert rcpt(gateway, "anyone@claimed.example") == 250
