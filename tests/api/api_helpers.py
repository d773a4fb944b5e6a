"""Helpers for the API tests: fill a live server's database quickly, and run the 4.3 SDK in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mailsec.config import load_settings
from mailsec.pipeline import process_message
from mailsec.services import Services, open_services
from support import LiveServer, make_eml

SDK4_SCRIPT = Path(__file__).with_name("sdk4_client.py")


def server_services(live: LiveServer) -> Services:
    """The live server's own database and blob store, opened from the test process."""
    return open_services(load_settings(env={}, data_dir=live.data_dir, database_url=live.database_url))


def fill(live: LiveServer, account: str, count: int, prefix: str = "bulk") -> list[str]:
    """Store `count` small synthetic messages through the pipeline; returns their ids in storing order."""
    services = server_services(live)
    try:
        return [
            process_message(
                services, make_eml(subject=f"{prefix} message {i}", sender=f"s{i % 17}@bulk{i % 5}.example"), account
            ).id
            for i in range(count)
        ]
    finally:
        services.close()


def sdk4_path() -> Path:
    value = os.environ.get("MAILSEC_SDK4_PATH", "")
    if not value or not (Path(value) / "cloudflare").is_dir():
        pytest.skip(
            "SDK 4.3 not installed: `pip install --no-deps --target .sdk4 'cloudflare==4.3.*'` and set "
            "MAILSEC_SDK4_PATH (make test does both)"
        )
    return Path(value)


def run_sdk4(request: dict[str, Any], script: Path = SDK4_SCRIPT) -> Any:
    """Run `script` (sdk4_client.py unless told) with the 4.3 SDK first on the path; it answers one JSON document."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(sdk4_path()), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(script)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)
