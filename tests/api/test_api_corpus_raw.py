"""`mailsec ingest` of every corpus message (4,750 .eml) stores each once, a second run stores none, and the API's
`raw` gives back each file's exact bytes. SQLite only (the corpus-wide run); other tests cover PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from api_helpers import server_services

from support import make_live_server


@pytest.mark.slow
def test_ingest_whole_corpus_and_raw_roundtrip(corpora: Path, tmp_path: Path) -> None:
    # the 2002 and phishing_pot corpora (modern-ham and phish-other are read by the detection tests)
    files = sorted([*(corpora / "phishing_pot").glob("*.eml"), *(corpora / "spamassassin").rglob("*.eml")])
    assert len(files) >= 4000
    live = make_live_server(tmp_path / "live", f"sqlite:///{tmp_path / 'mailsec.db'}")
    account = live.create_account("corpus")
    token = live.create_token(account, read_only=True)
    # Directories, as a user would pass them (the corpus README, LICENSE and script are not mail: list the
    # folders that hold only .eml files, plus the .eml files of phishing_pot).
    phish = sorted((corpora / "phishing_pot").glob("*.eml"))
    folders = [str(p) for p in sorted((corpora / "spamassassin").iterdir()) if p.is_dir()]
    args = ["ingest", "--account", account, "--quiet", *folders, *map(str, phish)]
    out = live.cli(*args).stdout.splitlines()
    assert out[:3] == [f"stored: {len(files)}", "duplicates: 0", "failed: 0"], out[:20]
    again = live.cli(*args).stdout.splitlines()
    assert again[:3] == ["stored: 0", f"duplicates: {len(files)}", "failed: 0"], again[:20]

    services = server_services(live)
    try:
        assert services.messages.count(account) == len(files)
        refs = {}
        for f in files:
            stored = services.messages.find_by_raw(account, hashlib.sha256(f.read_bytes()).hexdigest())
            assert stored is not None, f
            refs[f] = stored.id
    finally:
        services.close()
    assert len(set(refs.values())) == len(files)

    live.start()
    try:
        base = f"{live.base_url}/accounts/{account}/email-security/investigate"
        latin1 = 0
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            for f, ref in refs.items():
                r = http.get(f"{base}/{ref}/raw")
                assert r.status_code == 200, (f, r.text[:300])
                result = r.json()["result"]
                encoding = result.get("encoding", "utf-8")
                latin1 += encoding == "latin-1"
                assert result["raw"].encode(encoding) == f.read_bytes(), f
        assert latin1 > 0  # the corpus has 8-bit messages that are not UTF-8
    finally:
        live.stop()
