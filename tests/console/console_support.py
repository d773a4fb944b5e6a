"""Helpers of the console tests: a live `mailsec serve` with an account, tokens and a user with a password, and
signing in as a person would, through the form."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailsec.config import load_settings
from mailsec.services import open_services
from support import LiveServer, make_live_server

CHROMIUM = os.environ.get("MAILSEC_CHROMIUM_PATH", "/usr/bin/chromium")
PASSWORD = "correct horse battery staple"


@dataclass
class Console:
    """A running console and the credentials to sign in with."""

    server: LiveServer
    account: str
    token: str
    read_token: str
    email: str
    password: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@dataclass
class BrowserPage:
    page: Any  # playwright.sync_api.Page
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def start_console(data_dir: Path, **env: str) -> Console:
    server = make_live_server(data_dir, f"sqlite:///{data_dir / 'mailsec.db'}", **env)
    services = open_services(load_settings(env=server.env))
    try:
        account = services.accounts.create_account("Console").id
        token = services.accounts.create_token(account)
        read_token = services.accounts.create_token(account, can_write=False)
        email = "analyst@corp.example"
        services.accounts.create_user(email, account)
        services.accounts.set_password(email, PASSWORD)
    finally:
        services.close()
    server.start()
    return Console(server, account, token, read_token, email, PASSWORD)


def sign_in_with_token(page: Any, base_url: str, token: str) -> None:
    page.goto(f"{base_url}/signin")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url("**/search**")


def sign_in_with_password(page: Any, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/signin")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in with password").click()
    page.wait_for_url("**/search**")
