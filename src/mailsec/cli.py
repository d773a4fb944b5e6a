"""The `mailsec` command. A face: it parses arguments, calls the services and prints. Commands that create a
secret or an id print it as the last line of standard output, so scripts can capture it."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mailsec.config import Settings, load_settings
from mailsec.model import DeliveryMode
from mailsec.report_address import REPORT_ADDRESS, validate_report_address
from mailsec.services import Services, open_services

app = typer.Typer(help="mailsec: self-hosted e-mail security gateway and investigation platform.", no_args_is_help=True)
account_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
token_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users (global API keys).", no_args_is_help=True)
app.add_typer(account_app, name="account")
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
domain_app = typer.Typer(help="Manage protected domains (mail routing).", no_args_is_help=True)
app.add_typer(domain_app, name="domain")
quarantine_app = typer.Typer(
    help="The gateway's quarantine policy: which dispositions are held, and subject tags.", no_args_is_help=True
)
app.add_typer(quarantine_app, name="quarantine-policy")

err = Console(stderr=True)
DataOpt = Annotated[Path | None, typer.Option("--data", help="Data directory (default $MAILSEC_DATA_DIR or ./var).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file (default $MAILSEC_CONFIG).")]
AccountOpt = Annotated[str, typer.Option("--account", help="Account id (32 hex).")]
ReportAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--report-address",
        help="Where the domain's users forward suspicious mail (report@DOMAIN): recorded as a user submission, "
        "never delivered.",
    ),
]


def settings_for(data: Path | None, config: Path | None = None, **overrides: Any) -> Settings:
    return load_settings(config_file=config, data_dir=data, **overrides)


def services_for(data: Path | None, config: Path | None = None, **overrides: Any) -> Services:
    return open_services(settings_for(data, config, **overrides))


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def store_location(settings: Settings) -> str:
    """Where the CLI looked, for errors: the data directory, or the database when one is configured."""
    if settings.database_url:
        from sqlalchemy.engine import make_url

        try:
            return f"database {make_url(settings.database_url).render_as_string(hide_password=True)}"
        except ValueError:
            return "the configured database ($MAILSEC_DATABASE_URL)"
    return f"data directory {settings.data_dir.resolve()}"


def require_account(services: Services, account_id: str) -> None:
    if services.accounts.get_account(account_id.lower()) is None:
        fail(
            f"no account {account_id} in {store_location(services.settings)}; "
            "pass --data DIR (or set MAILSEC_DATA_DIR) to use another, or create one with `mailsec account create NAME`"
        )


def parse_date_option(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or date-time (naive means UTC); a clear error naming the option otherwise."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {value!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC, or add Z or +HH:MM)")
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def date_range(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    start, end = parse_date_option(since, "--since"), parse_date_option(until, "--until")
    if start is not None and end is not None and start > end:
        fail(f"--since ({since}) is after --until ({until})")
    return start, end


def account_services(data: Path | None, config: Path | None, account: str) -> Services:
    services = services_for(data, config)
    require_account(services, account)
    return services


def progress_bar(label: str, quiet: bool) -> Progress:
    """The bar long commands draw on stderr (off with --quiet or when stderr is not a terminal)."""
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
    )


def print_failures(failed: list[tuple[str, str]], limit: int = 50) -> None:
    print(f"failed: {len(failed)}")
    for ref, reason in failed[:limit]:
        print(f"  {ref}: {reason}")
    if len(failed) > limit:
        print(f"  ... and {len(failed) - limit} more")


@app.command()
def serve(
    data: DataOpt = None,
    config: ConfigOpt = None,
    api: Annotated[
        str | None, typer.Option("--api", help="API listen address HOST:PORT (default 127.0.0.1:8025).")
    ] = None,
    smtp: Annotated[
        str | None, typer.Option("--smtp", help="Also run the SMTP gateway on HOST:PORT ($MAILSEC_SMTP_LISTEN).")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="debug, info, warning or error (default $MAILSEC_LOG_LEVEL or info).")
    ] = None,
) -> None:
    """Start the API, the queue worker and (with --smtp) the SMTP gateway."""
    import uvicorn

    from mailsec import observability
    from mailsec.api.app import create_app
    from mailsec.gateway.service import start_gateway
    from mailsec.store.queue import QueueRepo

    settings = settings_for(data, config, api_listen=api, smtp_listen=smtp, log_level=log_level).for_serve()
    observability.configure_logging(settings.log_level, settings.log_format)
    if settings.metrics_listen:  # before the workers start: they write their counts to the same directory
        observability.enable_multiprocess(settings.data_dir / "metrics")
    services = open_services(settings)
    host, port = services.settings.api_address
    metrics_server = None
    if settings.metrics_listen:
        try:
            metrics_server = observability.start_metrics(settings, QueueRepo(services.engine).depth)
        except (OSError, ValueError) as exc:
            fail(f"cannot serve metrics on {settings.metrics_listen!r} (MAILSEC_METRICS_LISTEN): {exc}")
            return
        err.print(f"mailsec metrics on http://{metrics_server.host}:{metrics_server.port}/metrics")
    # uvicorn re-raises the signal that stopped it once it has shut down; SIGTERM (systemd's stop) would then kill the
    # process before the gateway stops, so it ends the process the way Ctrl-C does (also while starting up).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    gateway = None
    try:
        gateway = start_gateway(services)
        if gateway.smtp is not None:
            err.print(f"mailsec SMTP gateway on {gateway.smtp.host}:{gateway.smtp.port}")
        err.print(f"mailsec API on http://{host}:{port}/client/v4 (data: {services.settings.data_dir.resolve()})")
        uvicorn.run(
            create_app(services), host=host, port=port, log_level=settings.log_level.lower(), access_log=False,
            log_config=None,  # uvicorn's lines go through the same formatter as ours
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the stop short
        if gateway is not None:
            gateway.stop()  # queue worker processes finish their current message
        if metrics_server is not None:
            metrics_server.stop()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@account_app.command("create")
def account_create(
    name: str,
    account_id: Annotated[
        str | None, typer.Option("--id", help="Use this id (32 hex) instead of a random one.")
    ] = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create an account; prints its id last."""
    from mailsec.store.accounts import AlreadyExists

    services = services_for(data, config)
    try:
        account = services.accounts.create_account(name, account_id)
    except (ValueError, AlreadyExists) as exc:
        fail(str(exc))
        return
    err.print(f"created account {account.name!r}")
    print(account.id)


@account_app.command("list")
def account_list(data: DataOpt = None, config: ConfigOpt = None) -> None:
    """List accounts."""
    services = services_for(data, config)
    for account in services.accounts.list_accounts():
        print(f"{account.id}\t{account.name}")


@account_app.command("delete")
def account_delete(
    account_id: str,
    yes: Annotated[
        bool, typer.Option("--yes", help="Really delete (messages, settings, domains, queued mail).")
    ] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Delete an account with its messages, settings, domains, tokens and queued mail."""
    if not yes:
        fail("this deletes the account and all its data; repeat with --yes")
    services = services_for(data, config)
    if not services.accounts.delete_account(account_id.lower()):
        fail(f"no account {account_id}")
    err.print(f"deleted account {account_id.lower()}")


@token_app.command("create")
def token_create(
    account: AccountOpt,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Read scope only (Cloud Email Security: Read).")
    ] = False,
    name: Annotated[str, typer.Option(help="A label for the token.")] = "",
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create an API token for an account; prints the token last (it is shown only once)."""
    services = account_services(data, config, account)
    token = services.accounts.create_token(account.lower(), can_write=not read_only, name=name)
    err.print(f"created {'read-only' if read_only else 'read-write'} token for account {account}; store it now")
    print(token)


@token_app.command("list")
def token_list(
    account: AccountOpt,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List an account's API tokens (ids, scope, creation time; never the secret)."""
    services = account_services(data, config, account)
    tokens = services.accounts.list_tokens(account.lower())
    if as_json:
        for t in tokens:
            print(
                json.dumps(
                    {"id": t.id, "name": t.name, "read_only": t.read_only, "revoked": t.revoked,
                     "created_at": t.created_at.isoformat().replace("+00:00", "Z")}
                )
            )  # fmt: skip
        return
    for t in tokens:
        scope = "read-only" if t.read_only else "read-write"
        state = "revoked" if t.revoked else "active"
        print(f"{t.id}\t{scope}\t{state}\t{t.created_at:%Y-%m-%d %H:%M:%S}Z\t{t.name}")


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id, as `mailsec token list` shows it.")],
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke a token: every process refuses it from its next request (grants are not cached)."""
    services = services_for(data, config)
    revoked = services.accounts.revoke_token(token_id)
    if revoked is None:
        fail(
            f"no token {token_id} in {store_location(services.settings)}; `mailsec token list --account ID` lists them"
        )
    err.print(f"revoked token {revoked.id} of account {revoked.account_id}")


@user_app.command("create")
def user_create(
    email: str,
    account: AccountOpt,
    read_only: Annotated[bool, typer.Option("--read-only", help="Read scope only.")] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a user and issue its global API key; prints the key last. An existing user keeps its key: use
    `user grant` to give it another account, `user rotate-key` for a new key."""
    from mailsec.store.accounts import AlreadyExists

    services = account_services(data, config, account)
    try:
        key = services.accounts.create_user(email, account.lower(), can_write=not read_only)
    except AlreadyExists:
        fail(
            f"user {email.strip().lower()} already exists and keeps its key; give it this account with "
            f"`mailsec user grant {email} --account {account}`, "
            f"or issue a new key with `mailsec user rotate-key {email}`"
        )
    err.print(f"user {email} can reach account {account}; use X-Auth-Email and X-Auth-Key")
    print(key)


@user_app.command("grant")
def user_grant(
    email: str,
    account: AccountOpt,
    read_only: Annotated[bool, typer.Option("--read-only", help="Read scope only.")] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Give an existing user access to an account (or change its scope there); its key is unchanged."""
    from mailsec.store.accounts import NotFound

    services = account_services(data, config, account)
    try:
        services.accounts.grant_user(email, account.lower(), can_write=not read_only)
    except NotFound as exc:
        fail(f"{exc} in {store_location(services.settings)}")
    err.print(f"user {email} can reach account {account} ({'read-only' if read_only else 'read-write'})")


@user_app.command("rotate-key")
def user_rotate_key(email: str, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Issue a new global API key for a user; the old key stops working at once. Prints the key last."""
    from mailsec.store.accounts import NotFound

    services = services_for(data, config)
    try:
        key = services.accounts.rotate_user_key(email)
    except NotFound as exc:
        fail(f"{exc} in {store_location(services.settings)}")
    err.print(f"new key for {email}; the old one no longer works")
    print(key)


@user_app.command("list")
def user_list(
    account: Annotated[str | None, typer.Option("--account", help="Only users with access to this account.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List users with the accounts they reach (never a key or password)."""
    services = account_services(data, config, account) if account else services_for(data, config)
    for u in services.accounts.list_users(account.lower() if account else None):
        if as_json:
            print(
                json.dumps(
                    {"email": u.email,
                     "accounts": [{"id": a, "read_only": not w} for a, w in sorted(u.accounts.items())],
                     "has_password": u.has_password, "created_at": u.created_at.isoformat().replace("+00:00", "Z")}
                )
            )  # fmt: skip
            continue
        reach = ",".join(f"{a}:{'rw' if w else 'ro'}" for a, w in sorted(u.accounts.items())) or "-"
        print(f"{u.email}\t{reach}\t{'password' if u.has_password else 'no password'}")


@user_app.command("delete")
def user_delete(
    email: str,
    account: Annotated[
        str | None, typer.Option("--account", help="Only remove the user's access to this account.")
    ] = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Delete a user (its key and password stop working at once), or with --account only one of its grants."""
    services = services_for(data, config)
    if not services.accounts.delete_user(email, account.lower() if account else None):
        where = f" with access to account {account}" if account else ""
        fail(f"no user {email.strip().lower()}{where} in {store_location(services.settings)}")
    err.print(f"removed {email.strip().lower()}" + (f" from account {account}" if account else ""))


@user_app.command("set-password")
def user_set_password(
    email: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (for scripts).")
    ] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Set a user's console password (stored as a salted scrypt hash); asks twice unless --password-stdin."""
    import sys

    from mailsec.store.accounts import NotFound

    services = services_for(data, config)
    if email.strip().lower() not in {u.email for u in services.accounts.list_users()}:
        fail(f"no user {email.strip().lower()} in {store_location(services.settings)}")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True, err=True)
    try:
        services.accounts.set_password(email, password)
    except NotFound as exc:
        fail(f"{exc} in {store_location(services.settings)}")
    except ValueError as exc:
        fail(str(exc))
    err.print(f"password set for {email.strip().lower()}")


@domain_app.command("add")
def domain_add(
    domain: str,
    account: AccountOpt,
    mode: Annotated[str, typer.Option("--mode", help="DIRECT (mailsec is the MX), BCC or JOURNAL.")] = "DIRECT",
    next_hop: Annotated[
        str, typer.Option("--next-hop", help="smtp://HOST:PORT or lmtp://HOST:PORT (needed for DIRECT).")
    ] = "",
    report_address: ReportAddressOpt = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Protect a domain: route its mail to an account; prints the domain id last."""
    from mailsec.gateway.deliver import parse_next_hop
    from mailsec.store.accounts import AlreadyExists

    services = account_services(data, config, account)
    mode = mode.upper()
    if mode not in ("DIRECT", "BCC", "JOURNAL"):
        fail("--mode must be DIRECT, BCC or JOURNAL")
    if mode == "DIRECT" and not next_hop:
        fail("DIRECT mode needs --next-hop smtp://HOST:PORT or lmtp://HOST:PORT")
    try:
        if next_hop:
            parse_next_hop(next_hop)
        settings = {REPORT_ADDRESS: validate_report_address(report_address, domain)} if report_address else None
        added = services.domains.add(
            account.lower(), domain, mode=mode, next_hop=next_hop, settings=settings, verified=True, actor="cli"
        )
    except (ValueError, AlreadyExists) as exc:
        fail(str(exc))
        return
    err.print(f"{added.domain}: {added.mode}" + (f" -> {added.next_hop}" if added.next_hop else "") + _reports(added))
    print(added.id)


def _reports(domain: Any) -> str:
    from mailsec.report_address import report_address_of

    address = report_address_of(domain)
    return f"; user reports to {address}" if address else ""


@domain_app.command("list")
def domain_list(account: AccountOpt, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """List an account's protected domains (id, name, mode, next hop, ACTIVE or PENDING)."""
    services = account_services(data, config, account)
    for d in services.domains.list(account.lower()):
        print(f"{d.id}\t{d.domain}\t{d.mode}\t{d.next_hop}\t{d.status}")


@domain_app.command("verify")
def domain_verify(
    domain: Annotated[str, typer.Argument(help="The domain's name or id.")],
    account: AccountOpt,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Mark a PENDING domain (claimed through the API) verified without its DNS TXT record: the operator vouches
    that the account controls it. Its mail is accepted from then on."""
    from mailsec.store.domains import DomainRefused

    services = account_services(data, config, account)
    found = services.domains.find(account.lower(), domain)
    if found is None:
        fail(f"no domain {domain} in account {account}")
        return
    try:
        verified = services.domains.mark_verified(account.lower(), found.id, actor="cli")
    except DomainRefused as exc:
        fail(str(exc))
        return
    err.print(f"{verified.domain}: {verified.status}")
    print(verified.id)


def find_domain(services: Services, account: str, domain: str) -> Any:
    """The account's protected domain named by its name or its id."""
    from mailsec.ids import parse_numeric_id
    from mailsec.store.domains import normalize_domain

    pk = parse_numeric_id(domain.strip())
    try:
        name = normalize_domain(domain)
    except ValueError:
        name = ""
    for d in services.domains.list(account.lower()):
        if d.id == pk or d.domain == name:
            return d
    fail(f"account {account} protects no domain {domain} (`mailsec domain list --account {account}`)")


@domain_app.command("remove")
def domain_remove(
    domain: Annotated[str, typer.Argument(help="Domain name or id.")],
    account: AccountOpt,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Stop protecting a domain: its mail is refused from now on (stored messages stay)."""
    services = account_services(data, config, account)
    found = find_domain(services, account, domain)
    if not services.domains.delete(account.lower(), found.id, actor="cli"):
        fail(f"domain {found.domain} was already removed")
    err.print(f"removed {found.domain} (id {found.id})")


@domain_app.command("edit")
def domain_edit(
    domain: Annotated[str, typer.Argument(help="Domain name or id.")],
    account: AccountOpt,
    mode: Annotated[str | None, typer.Option("--mode", help="DIRECT, BCC or JOURNAL.")] = None,
    next_hop: Annotated[
        str | None, typer.Option("--next-hop", help="smtp://HOST:PORT or lmtp://HOST:PORT ('' to clear).")
    ] = None,
    report_address: ReportAddressOpt = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Change how a protected domain's mail arrives (--mode), where it is delivered (--next-hop) or where its
    users report suspicious mail (--report-address, '' to stop)."""
    from mailsec.gateway.deliver import parse_next_hop

    if mode is None and next_hop is None and report_address is None:
        fail("nothing to change: give --mode, --next-hop and/or --report-address")
    services = account_services(data, config, account)
    found = find_domain(services, account, domain)
    new_mode = (mode or found.mode).upper()
    new_hop = found.next_hop if next_hop is None else next_hop.strip()
    if new_mode not in ("DIRECT", "BCC", "JOURNAL"):
        fail("--mode must be DIRECT, BCC or JOURNAL")
    if new_mode == "DIRECT" and not new_hop:
        fail("DIRECT mode needs --next-hop smtp://HOST:PORT or lmtp://HOST:PORT")
    if new_hop:
        try:
            parse_next_hop(new_hop)
        except ValueError as exc:
            fail(f"--next-hop: {exc}")
    settings = dict(found.settings)
    if settings.get("allowed_delivery_modes") and new_mode not in settings["allowed_delivery_modes"]:
        settings["allowed_delivery_modes"] = [new_mode, *settings["allowed_delivery_modes"]]
    if report_address is not None:
        settings.pop(REPORT_ADDRESS, None)
        try:
            if report_address.strip():
                settings[REPORT_ADDRESS] = validate_report_address(report_address, found.domain)
        except ValueError as exc:
            fail(f"--report-address: {exc}")
    try:
        updated = services.domains.update(
            account.lower(), found.id, actor="cli", mode=new_mode, next_hop=new_hop, settings=settings
        )
    except ValueError as exc:
        fail(str(exc))
    if updated is None:
        fail(f"domain {found.domain} was removed meanwhile")
    err.print(
        f"{updated.domain}: {updated.mode}"
        + (f" -> {updated.next_hop}" if updated.next_hop else "")
        + _reports(updated)
    )
    print(updated.id)


@quarantine_app.command("show")
def quarantine_show(
    account: AccountOpt,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Show which dispositions the gateway holds for an account, and its subject tags."""
    from mailsec.store.policies import get_quarantine_policy

    services = account_services(data, config, account)
    policy = get_quarantine_policy(services.engine, account.lower(), services.settings.quarantine_dispositions)
    _print_quarantine_policy(policy, as_json)


@quarantine_app.command("set")
def quarantine_set(
    account: AccountOpt,
    dispositions: Annotated[
        list[str] | None, typer.Argument(help="Dispositions to hold, e.g. MALICIOUS MALICIOUS-BEC SPOOF SPAM.")
    ] = None,
    hold_nothing: Annotated[bool, typer.Option("--hold-nothing", help="Hold no disposition: deliver all.")] = False,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="DISPOSITION=TAG put before the Subject of delivered mail (repeatable)."),
    ] = None,
    no_tags: Annotated[bool, typer.Option("--no-tags", help="Remove every subject tag.")] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Replace the held dispositions (and, with --tag/--no-tags, the subject tags; otherwise they are kept)."""
    from mailsec.store.policies import get_quarantine_policy, set_quarantine_policy

    if not dispositions and not hold_nothing:
        fail("name the dispositions to hold (e.g. MALICIOUS MALICIOUS-BEC SPOOF), or pass --hold-nothing")
    if dispositions and hold_nothing:
        fail("--hold-nothing takes no dispositions")
    services = account_services(data, config, account)
    current = get_quarantine_policy(services.engine, account.lower(), services.settings.quarantine_dispositions)
    tags = {} if no_tags else dict(current.subject_tag)
    for spec in tag or ():
        name, sep, value = spec.partition("=")
        if not sep:
            fail(f"--tag {spec!r} is not DISPOSITION=TAG")
        tags[name.strip().upper()] = value
    try:
        policy = set_quarantine_policy(services.engine, account.lower(), dispositions or [], tags)
    except ValueError as exc:
        fail(str(exc))
        return
    _print_quarantine_policy(policy, False)


@quarantine_app.command("reset")
def quarantine_reset(account: AccountOpt, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Back to the default policy ($MAILSEC_QUARANTINE_DISPOSITIONS, no subject tags)."""
    from mailsec.store.policies import get_quarantine_policy, reset_quarantine_policy

    services = account_services(data, config, account)
    reset_quarantine_policy(services.engine, account.lower())
    policy = get_quarantine_policy(services.engine, account.lower(), services.settings.quarantine_dispositions)
    _print_quarantine_policy(policy, False)


def _print_quarantine_policy(policy: Any, as_json: bool) -> None:
    if as_json:
        held = list(policy.dispositions)
        print(json.dumps({"dispositions": held, "subject_tag": policy.subject_tag, "is_default": policy.is_default}))
        return
    print(f"held: {' '.join(policy.dispositions) or '(nothing)'}{' (default)' if policy.is_default else ''}")
    for name, value in sorted(policy.subject_tag.items()):
        print(f"tag {name}: {value}")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help=".eml files, directories, mbox files or Maildir folders.")],
    account: AccountOpt,
    mode: Annotated[DeliveryMode, typer.Option("--mode", help="Delivery mode recorded for these messages.")] = (
        DeliveryMode.API
    ),
    data: DataOpt = None,
    config: ConfigOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Scan and store messages from files; prints a summary."""
    from mailsec.ingest import count_items, ingest_paths

    services = account_services(data, config, account)
    total = count_items(paths)
    progress = progress_bar("ingest", quiet)
    counts = {"stored": 0, "duplicate": 0, "failed": 0}
    with progress:
        task = progress.add_task("ingest", total=total, stats="")

        def on_item(_item: object, outcome: str) -> None:
            counts[outcome] += 1
            progress.update(
                task,
                advance=1,
                stats=f"{counts['stored']} stored, {counts['duplicate']} dup, {counts['failed']} failed",
            )

        summary = ingest_paths(services, account.lower(), paths, mode=mode, on_item=on_item)
    print(f"stored: {summary.stored}")
    print(f"duplicates: {summary.duplicates}")
    print_failures(summary.failed)
    if summary.failed and not summary.stored and not summary.duplicates:
        raise typer.Exit(1)


@app.command()
def search(
    account: AccountOpt,
    query: Annotated[str | None, typer.Option(help="Space-separated terms; all must match.")] = None,
    sender: Annotated[str | None, typer.Option(help="Sender address or domain.")] = None,
    recipient: Annotated[str | None, typer.Option(help="Recipient address or domain.")] = None,
    domain: Annotated[str | None, typer.Option(help="Sender, recipient or link domain.")] = None,
    subject: Annotated[str | None, typer.Option(help="Keywords in the subject, any order.")] = None,
    disposition: Annotated[str | None, typer.Option("--disposition", help="final_disposition.")] = None,
    all_messages: Annotated[bool, typer.Option("--all", help="Include clean (NONE) messages.")] = False,
    days: Annotated[int, typer.Option(help="How many days back (unless --since).")] = 30,
    since: Annotated[str | None, typer.Option(help="Scanned at or after this ISO date-time (UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Scanned before this ISO date-time (UTC).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many results.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Search stored messages, newest first."""
    from datetime import timedelta

    from mailsec.store.search import SearchError, SearchParams, run_search

    start, end = date_range(since, until)
    services = account_services(data, config, account)
    params = SearchParams(
        start=start or (end or datetime.now(UTC)) - timedelta(days=days),
        end=end,
        query=query,
        sender=sender,
        recipient=recipient,
        domain=domain,
        subject=subject,
        final_disposition=disposition,
        detections_only=not all_messages,
        per_page=max(1, min(limit, 1000)),
    )
    try:
        page = run_search(services.engine, account.lower(), params)
    except SearchError as exc:
        fail(str(exc))
        return
    rows = services.messages.get_many(page.pks)
    if as_json:
        for m in rows:
            print(
                json.dumps(
                    {
                        "id": m.id,
                        "postfix_id": m.postfix_id,
                        "scanned_at": m.scanned_at.isoformat(),
                        "final_disposition": str(m.final_disposition),
                        "delivery_status": m.delivery_status,
                        "from": m.from_addr,
                        "subject": m.subject,
                    }
                )
            )
        return
    print_message_table(
        [
            (m.id, m.scanned_at.strftime("%Y-%m-%d %H:%M:%S"), str(m.final_disposition),
             m.from_addr or "", m.subject or "")
            for m in rows
        ]
    )  # fmt: skip
    err.print(f"{len(rows)} message(s)")


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def print_message_table(rows: list[tuple[str, str, str, str, str]]) -> None:
    """id, scanned, disposition, from, subject. Ids, times and dispositions are never cut (ids are what the next
    command needs); sender and subject share what the terminal's width leaves, at least 12 and 20 characters."""
    import shutil

    headers = ("id", "scanned (UTC)", "disposition", "from", "subject")
    widths = [max([len(headers[i]), *(len(r[i]) for r in rows)]) for i in range(3)]
    fixed = sum(widths) + 2 * 3
    room = max(shutil.get_terminal_size((120, 24)).columns - fixed - 2, 32)
    longest_from = max([len(headers[3]), *(len(" ".join(r[3].split())) for r in rows)])
    from_width = max(min(longest_from, room // 3), 12)
    subject_width = max(room - from_width, 20)
    for row in [headers, *rows]:
        cells = [row[i].ljust(widths[i]) for i in range(3)]
        cells += [_clip(row[3], from_width).ljust(from_width), _clip(row[4], subject_width)]
        print("  ".join(cells).rstrip())


LabelledArg = Annotated[
    list[str], typer.Argument(help="LABEL=PATH pairs; labels: phishing, spam, bulk, ham. PATH is a file or folder.")
]


@app.command()
def train(
    specs: LabelledArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Model file to write (.npz).")],
    c: Annotated[float, typer.Option("--c", help="Inverse regularisation strength.")] = 32.0,
) -> None:
    """Train the content classifier on labelled folders; deterministic for the same input."""
    from mailsec.evaluate import parse_specs, train_from_folders

    try:
        labelled = parse_specs(specs)
    except ValueError as exc:
        fail(str(exc))
        return
    model = train_from_folders(labelled, c=c)
    model.save(output)
    counts = ", ".join(f"{k}={v}" for k, v in model.meta.get("sources", {}).items())
    err.print(f"trained on {counts}")
    print(output)


@app.command("eval")
def eval_command(
    specs: LabelledArg,
    model_path: Annotated[
        Path | None, typer.Option("--model", help="Content model file (default: the shipped one).")
    ] = None,
    folds: Annotated[
        int,
        typer.Option(
            "--folds",
            help="Cross-validate instead: train on the folders themselves, N folds that never split a source "
            "(manifest repository, mailing list, folder + sender domain) or a campaign; 0 scans with the model.",
        ),
    ] = 0,
    by_source: Annotated[bool, typer.Option("--by-source", help="Also one row per source group.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on standard output.")] = False,
) -> None:
    """Scan labelled folders (no DNS, no database) and print dispositions per folder with detection rates and the
    share the default quarantine policy holds."""
    from mailsec.evaluate import DISPOSITIONS, cross_validate_samples, load_samples, parse_specs, summarise
    from mailsec.model import Envelope
    from mailsec.scan import scan_message
    from mailsec.scan.content import ContentModel

    try:
        labelled = parse_specs(specs)
        model = ContentModel.load(model_path) if model_path else None
    except (ValueError, OSError) as exc:
        fail(str(exc))
        return
    if folds == 1 or folds < 0:
        fail("--folds needs at least 2 (or 0 to scan with the model)")
        return
    samples = load_samples(labelled)
    if folds:
        try:
            dispositions = [v.disposition for v in cross_validate_samples(samples, n_folds=folds).verdicts]
        except ValueError as exc:  # a fold left with one label, or fewer groups than folds
            fail(f"cannot cross-validate: {exc}")
            return
    else:
        dispositions = [scan_message(s.parsed, Envelope(), model=model).disposition for s in samples]
    report = {
        "groups": summarise(samples, dispositions, lambda s: s.corpus),
        "folders": summarise(samples, dispositions, lambda s: s.folder),
    }
    if by_source:
        report["sources"] = summarise(samples, dispositions, lambda s: s.source or "(campaigns)")
    if as_json:
        print(json.dumps({k: [r.as_dict() for r in v] for k, v in report.items()}, indent=2))
        return
    for kind, results in report.items():
        table = Table("label", kind[:-1], "total", *DISPOSITIONS, "flagged", "rate", "held")
        for r in results:
            fp = "FP " if r.label == "ham" else ""
            table.add_row(
                r.label, r.name, str(r.total), *(str(r.counts.get(d, 0)) for d in DISPOSITIONS), str(r.caught),
                f"{fp}{r.rate:.1%}", f"{r.held_rate:.1%}",
            )  # fmt: skip
        Console(width=220).print(table)


@app.command()
def preview(
    account: AccountOpt,
    message: Annotated[str, typer.Argument(help="Investigate id or postfix_id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the PNG.")] = Path("preview.png"),
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Render a stored message to a PNG with no script and no network; prints the file path last."""
    import getpass

    from mailsec.preview import PreviewError, PreviewService
    from mailsec.store.previews import PreviewCacheRepo

    services = account_services(data, config, account)
    stored = services.messages.get(account.lower(), message)
    if stored is None:
        fail(f"no message {message} in account {account}")
        return
    previews = PreviewService(services.settings, services.messages, services.blobs, PreviewCacheRepo(services.engine))
    try:
        result = previews.preview(stored, requested_by=f"cli:{getpass.getuser()}")
    except PreviewError as exc:
        fail(exc.message)
        return
    finally:
        previews.close()
    output.write_bytes(result.png)
    for res in result.remote_resources:
        err.print(f"remote {res['kind']}: {res['url']} (not fetched)")
    err.print(f"{result.width}x{result.height} PNG{' (cut at the height limit)' if result.truncated else ''}")
    print(output)


@app.command()
def rescan(
    account: AccountOpt,
    since: Annotated[str | None, typer.Option(help="Only messages scanned at or after this ISO date-time.")] = None,
    until: Annotated[str | None, typer.Option(help="Only messages scanned before this ISO date-time.")] = None,
    sender: Annotated[str | None, typer.Option(help="Only messages from this address or domain.")] = None,
    disposition: Annotated[
        list[str] | None, typer.Option("--disposition", help="Only messages now of this disposition (repeatable).")
    ] = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    no_move: Annotated[
        bool, typer.Option("--no-move", help="Do not apply the account's auto-move rules to changed messages.")
    ] = False,
) -> None:
    """Re-scan stored messages with today's rules and the account's policy; prints each change and a summary. A
    message whose disposition changed is moved in its recipients' mailboxes when the account's auto-move rules say
    so (`mailsec mailbox auto-move`)."""
    from mailsec import rescan as retro

    start, end = date_range(since, until)
    services = account_services(data, config, account)
    try:
        filters = retro.RescanFilter(
            since=start,
            until=end,
            sender=sender,
            dispositions=retro.parse_dispositions(disposition or []),
        )
    except ValueError as exc:
        fail(str(exc))
        return
    pks = retro.select(services, account.lower(), filters)
    progress = progress_bar("rescan", quiet)
    changed = 0
    with progress:
        task = progress.add_task("rescan", total=len(pks), stats="")

        def on_item(change: retro.Change | None) -> None:
            nonlocal changed
            if change is not None and change.old != change.new:
                changed += 1
            progress.update(task, advance=1, stats=f"{changed} changed")

        summary = retro.rescan(services, account.lower(), pks, on_item=on_item, move_after=not no_move)
    for change in summary.changed:
        print(f"{change.id}: {change.old} -> {change.new}")
    for item in summary.moves:
        reason = f" ({item.reason})" if item.reason else ""
        print(f"{item.id}: <{item.recipient or ''}> {item.status} {item.destination}{reason}")
    print(f"rescanned: {summary.scanned}")
    print(f"changed: {len(summary.changed)}")
    if summary.moves:
        print(f"moved: {sum(i.success for i in summary.moves)} of {len(summary.moves)} mailbox copies")
    print_failures(summary.failed)


def _add_mailbox_commands() -> None:
    from mailsec.cli_mailbox import mailbox_app

    app.add_typer(mailbox_app, name="mailbox")


_add_mailbox_commands()


def _add_learn_commands() -> None:
    from mailsec.cli_learn import model_app, reclassify_similar

    app.add_typer(model_app, name="model")
    app.command("reclassify-similar")(reclassify_similar)


_add_learn_commands()


def main() -> None:
    app(prog_name="mailsec")


if __name__ == "__main__":
    main()
