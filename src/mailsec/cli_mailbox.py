"""`mailsec mailbox add|list|test|remove`: the mailbox integrations through which moves reach recipients' mailboxes.
Secrets are read from a file (never the command line, which other users can see) and stored encrypted."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from mailsec.mailbox import registry, secrets
from mailsec.mailbox.base import MailboxError
from mailsec.services import Services
from mailsec.store.integrations import IntegrationRepo

# The options of mailsec.cli, declared again: this module is loaded while mailsec.cli itself is (also as __main__)
DataOpt = Annotated[Path | None, typer.Option("--data", help="Data directory (default $MAILSEC_DATA_DIR or ./var).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file (default $MAILSEC_CONFIG).")]
AccountOpt = Annotated[str, typer.Option("--account", help="Account id (32 hex).")]

mailbox_app = typer.Typer(help="Manage mailbox integrations (IMAP, Microsoft Graph, Gmail).", no_args_is_help=True)
KIND_OF_SCHEME = {"imap": "imap", "imaps": "imap", "graph": "graph", "gmail": "gmail"}


def account_services(data: Path | None, config: Path | None, account: str) -> Services:
    from mailsec.cli import account_services as open_for_account

    return open_for_account(data, config, account)


def fail(message: str) -> None:
    from mailsec.cli import fail as cli_fail

    cli_fail(message)


def note(message: str) -> None:
    from mailsec.cli import err

    err.print(message)


def _kind(url: str) -> str:
    kind = KIND_OF_SCHEME.get(urlsplit(url).scheme.lower())
    if kind is None:
        fail("--url must be imap://HOST:PORT, imaps://HOST:PORT, graph://TENANT or gmail://DOMAIN")
    return str(kind)


@mailbox_app.command("add")
def mailbox_add(
    account: AccountOpt,
    domain: Annotated[str, typer.Option("--domain", help="The recipient domain whose mailboxes this reaches.")],
    url: Annotated[
        str, typer.Option("--url", help="imap://HOST:PORT, imaps://HOST:PORT, graph://TENANT, gmail://DOMAIN")
    ],
    password_file: Annotated[
        Path, typer.Option("--password-file", help="IMAP admin password, Graph client secret or Gmail key JSON.")
    ],
    master_user: Annotated[str, typer.Option("--master-user", help="IMAP admin (Dovecot master user).")] = "",
    auth: Annotated[str, typer.Option("--auth", help="IMAP: master (user*admin) or authzid (SASL PLAIN).")] = "master",
    client_id: Annotated[str, typer.Option("--client-id", help="Graph: the application (client) id.")] = "",
    ca_file: Annotated[Path | None, typer.Option("--ca-file", help="IMAPS: trust this CA certificate.")] = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add an integration; prints its id last."""
    services = account_services(data, config, account)
    kind = _kind(url)
    try:
        secret = password_file.read_text().strip()
    except OSError as exc:
        fail(f"cannot read {password_file}: {exc}")
        return
    if not secret:
        fail(f"{password_file} is empty")
    options: dict[str, object] = {}
    if kind == "imap":
        if auth not in ("master", "authzid"):
            fail("--auth must be master or authzid")
        parts = urlsplit(url)
        admin = master_user or (parts.username or "")
        if not admin:
            fail("an IMAP integration needs --master-user (the admin identity)")
        netloc = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        url = f"{parts.scheme}://{admin.replace('@', '%40')}@{netloc}"
        options = {"auth": auth, **({"ca_file": str(ca_file.resolve())} if ca_file else {})}
    elif kind == "graph":
        if not client_id:
            fail("a Graph integration needs --client-id")
        options = {"client_id": client_id}
    repo = IntegrationRepo(services.engine)
    integration_id = repo.add(
        account.lower(), domain, kind, url, options, secrets.encrypt(services.settings.data_dir, secret)
    )
    note(f"{domain}: {kind} {url}")
    print(integration_id)


@mailbox_app.command("list")
def mailbox_list(account: AccountOpt, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """List an account's integrations (never their secrets)."""
    services = account_services(data, config, account)
    for i in IntegrationRepo(services.engine).list_for(account.lower()):
        print(f"{i.id}\t{i.domain}\t{i.kind}\t{i.url}")


@mailbox_app.command("test")
def mailbox_test(
    integration_id: str,
    account: AccountOpt,
    recipient: Annotated[
        str, typer.Option("--recipient", help="A mailbox to log in for (default postmaster@DOMAIN).")
    ] = "",
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Log in for one mailbox and show the folders moves would use."""
    services = account_services(data, config, account)
    integration = IntegrationRepo(services.engine).get(account.lower(), integration_id)
    if integration is None:
        fail(f"no integration {integration_id} in this account")
        return
    backend = registry.open_backend(integration, services.settings.data_dir)
    try:
        for line in backend.check(recipient or f"postmaster@{integration.domain}"):
            print(line)
    except (MailboxError, secrets.SecretError) as exc:
        fail(str(exc))
    finally:
        backend.close()
    note("ok")


@mailbox_app.command("remove")
def mailbox_remove(integration_id: str, account: AccountOpt, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Remove an integration (its secret goes with it)."""
    services = account_services(data, config, account)
    if not IntegrationRepo(services.engine).remove(account.lower(), integration_id):
        fail(f"no integration {integration_id} in this account")
    registry.forget(integration_id)
    print(integration_id)


@mailbox_app.command("auto-move")
def mailbox_auto_move(
    account: AccountOpt,
    rules: Annotated[list[str] | None, typer.Argument(help="DISPOSITION=FOLDER, e.g. SPAM=JunkEmail")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Move nothing automatically.")] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Show or set which dispositions of BCC/JOURNAL/API copies are moved where in the recipients' mailboxes."""
    from mailsec.actions import auto_move

    services = account_services(data, config, account)
    if rules or clear:
        wanted: dict[str, str] = {}
        for rule in rules or []:
            disposition, sep, folder = rule.partition("=")
            if not sep:
                fail(f"{rule!r} is not DISPOSITION=FOLDER")
            wanted[disposition] = folder
        try:
            auto_move.set_rules(services.engine, account.lower(), wanted)
        except ValueError as exc:
            fail(str(exc))
    current = auto_move.get_rules(services.engine, account.lower())
    for disposition, folder in current.items():
        print(f"{disposition}={folder.value}")
    if not current:
        note("no auto-move rules")
