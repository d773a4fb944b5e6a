"""`mailsec model status|rollback` and `mailsec reclassify-similar`: the faces of per-account learning
(`mailsec.learn`). They parse, call and print; the work is in the learn package."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from mailsec.services import Services

# `mailsec.cli` imports this module while it loads (also as __main__): its helpers are imported when called.
DataOpt = Annotated[Path | None, typer.Option("--data", help="Data directory (default $MAILSEC_DATA_DIR or ./var).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file (default $MAILSEC_CONFIG).")]
AccountOpt = Annotated[str, typer.Option("--account", help="Account id (32 hex).")]


def account_services(data: Path | None, config: Path | None, account: str) -> Services:
    from mailsec.cli import account_services as open_for_account

    return open_for_account(data, config, account)


def fail(message: str) -> NoReturn:
    from mailsec.cli import fail as cli_fail

    cli_fail(message)


model_app = typer.Typer(
    help="The account's own content model, adapted from its analysts' labels.", no_args_is_help=True
)


def _when(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@model_app.command("status")
def model_status(
    account: AccountOpt,
    data: DataOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The active version (0: the shipped model) and every update, accepted or refused, with its reason."""
    from mailsec.learn.model import status

    services = account_services(data, config, account)
    try:
        active, versions = status(services, account.lower())
    finally:
        services.close()
    if as_json:
        print(json.dumps({"active": active, "versions": [v.__dict__ for v in versions]}, sort_keys=True))
        return
    print(f"active: {active}" + (" (the shipped model)" if active == 0 else ""))
    for v in versions:
        print(f"  {v.version}  {v.state:<11}  {_when(v.created_us)}  parent {v.parent}  {v.submission_id or '-'}")
        print(f"      {v.reason}")


@model_app.command("rollback")
def model_rollback(
    account: AccountOpt,
    data: DataOpt = None,
    config: ConfigOpt = None,
    rescan: Annotated[
        bool, typer.Option("--rescan/--no-rescan", help="Re-scan the mail scanned since the rolled-back version.")
    ] = True,
) -> None:
    """Re-activate the version before the active one; the mail it scanned gets its earlier verdicts back."""
    from mailsec.learn.model import ModelError, rollback

    services = account_services(data, config, account)
    try:
        try:
            done = rollback(services, account.lower(), rescan_since=rescan)
        except ModelError as exc:
            fail(str(exc))
    finally:
        services.close()
    for ref, old, new in done.changes:
        print(f"{ref}: {old} -> {new}")
    print(f"rolled back version {done.rolled_back}; active: {done.active}")


def reclassify_similar(
    account: AccountOpt,
    message: Annotated[str, typer.Argument(help="The reclassified message: investigate id or postfix_id.")],
    days: Annotated[int, typer.Option(help="How far back to look, in days.", min=1, max=366)] = 30,
    apply: Annotated[bool, typer.Option("--apply", help="Re-scan the messages that would change.")] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The blast radius of a reclassification: stored messages of the last days that look like MESSAGE, and which
    of them would change; with --apply, re-scan those so that they get the analyst's verdict."""
    from mailsec.learn.blast import apply as apply_radius
    from mailsec.learn.blast import blast_radius

    services = account_services(data, config, account)
    try:
        stored = services.messages.get(account.lower(), message)
        if stored is None:
            fail(f"no message {message} in account {account}")
        radius = blast_radius(services, account.lower(), stored.pk, days)
        changing = {s.id for s in radius.would_change}
        for s in radius.similar:
            mark = "would change" if s.id in changing else "already"
            print(f"{s.id}: {s.disposition} ({mark}; {s.how})")
        print(f"similar: {len(radius.similar)}; would change to {radius.requested.value}: {len(changing)}")
        if apply:
            done = apply_radius(services, radius, account.lower(), "cli")
            for ref, old, new in done.changes:
                print(f"{ref}: {old} -> {new}")
            print(f"changed: {len(done.changes)}")
            if done.bulk_job_id:
                print(f"bulk MOVE job: {done.bulk_job_id}")
    finally:
        services.close()
