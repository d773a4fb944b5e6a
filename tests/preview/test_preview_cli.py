"""`mailsec preview --account ID ID -o file.png`: writes the PNG, logs the view, fails clearly without Chromium."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from preview_helpers import cid_eml, open_png

from mailsec.config import load_settings
from mailsec.pipeline import process_message
from mailsec.services import open_services
from support import MAILSEC


def test_cli_preview(tmp_path: Path) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Chromium not installed (Debian package chromium)")
    data = tmp_path / "data"
    services = open_services(load_settings(env={}, data_dir=data))
    try:
        account = services.accounts.create_account("CLI").id
        mid = process_message(services, cid_eml(), account).id
    finally:
        services.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSEC_")}
    out = tmp_path / "shot.png"
    proc = subprocess.run(
        [*MAILSEC, "preview", "--data", str(data), "--account", account, mid, "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    image = open_png(out.read_bytes())
    assert image.width == 800 and image.getpixel((150, 20)) == (20, 60, 200)

    services = open_services(load_settings(env={}, data_dir=data))
    try:
        stored = services.messages.get(account, mid)
        assert stored is not None
        actions = services.messages.actions([stored.pk])[stored.pk]
        assert [a.operation for a in actions] == ["PREVIEW"]
        assert (actions[0].requested_by or "").startswith("cli:")
    finally:
        services.close()

    # No Chromium (and, with another height cap, nothing cached): a clear error naming the package, exit status 1.
    proc = subprocess.run(
        [*MAILSEC, "preview", "--data", str(data), "--account", account, mid.split("-")[0], "-o", str(out)],
        capture_output=True,
        text=True,
        env={**env, "MAILSEC_CHROMIUM_PATH": "/nonexistent/chromium", "MAILSEC_PREVIEW_MAX_HEIGHT": "1234"},
        timeout=120,
    )
    assert proc.returncode == 1
    assert "apt-get install chromium" in proc.stderr.replace("\n", " ")
