import httpx

from support import LiveServer, make_eml


def test_live_server_answers_search_with_envelope(live_server: LiveServer, tmp_path) -> None:
    account = live_server.create_account()
    token = live_server.create_token(account)
    eml = tmp_path / "m.eml"
    eml.write_bytes(make_eml(subject="smoke test"))
    live_server.cli("ingest", "--account", account, str(eml))
    r = httpx.get(
        f"{live_server.base_url}/accounts/{account}/email-security/investigate",
        params={"detections_only": "false"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True
    assert [m["subject"] for m in body["result"]] == ["smoke test"]
