"""File ingest: .eml files, directories, mbox files and Maildir folders, each message through the pipeline.
Nothing a file holds can stop the run: a failure is counted with its reason and the next message goes on."""

from __future__ import annotations

import mailbox
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mailsec.model import DeliveryMode
from mailsec.pipeline import process_message
from mailsec.services import Services

MBOX_MAGIC = b"From "
_QUOTED_FROM = re.compile(rb"(?m)^>(>*From )")


def unquote_mbox(raw: bytes) -> bytes:
    """Undo the `>From ` quoting mbox writers add to body lines (mboxrd), so the stored .eml is the original."""
    return _QUOTED_FROM.sub(rb"\1", raw)


@dataclass(frozen=True)
class Item:
    label: str
    raw: bytes | None
    error: str | None = None


@dataclass
class IngestSummary:
    stored: int = 0
    duplicates: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    @property
    def seen(self) -> int:
        return self.stored + self.duplicates + len(self.failed)


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new"))


def _looks_like_mbox(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(5) == MBOX_MAGIC
    except OSError:
        return False


def _mbox_items(path: Path) -> Iterator[Item]:
    try:
        box = mailbox.mbox(str(path), create=False)
        for i, key in enumerate(box.iterkeys()):
            try:
                yield Item(f"{path}#{i + 1}", unquote_mbox(box.get_bytes(key)))
            except Exception as exc:
                yield Item(f"{path}#{i + 1}", None, f"unreadable mbox entry: {exc}")
    except Exception as exc:
        yield Item(str(path), None, f"unreadable mbox: {exc}")


def _maildir_items(path: Path) -> Iterator[Item]:
    for sub in ("new", "cur"):
        for f in sorted((path / sub).iterdir()):
            if f.is_file() and not f.name.startswith("."):
                yield from _file_items(f, allow_mbox=False)


def _file_items(path: Path, allow_mbox: bool = True) -> Iterator[Item]:
    if allow_mbox and _looks_like_mbox(path):
        yield from _mbox_items(path)
        return
    try:
        yield Item(str(path), path.read_bytes())
    except OSError as exc:
        yield Item(str(path), None, f"unreadable file: {exc.strerror or exc}")


def iter_items(paths: list[Path]) -> Iterator[Item]:
    for path in paths:
        if not path.exists():
            yield Item(str(path), None, "no such file or directory")
        elif _is_maildir(path):
            yield from _maildir_items(path)
        elif path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts):
                    if _is_maildir(f.parent.parent) and f.parent.name == "tmp":
                        continue
                    yield from _file_items(f)
        else:
            yield from _file_items(path)


def count_items(paths: list[Path]) -> int:
    """A cheap count for the progress bar (an mbox counts as one until it is read)."""
    total = 0
    for path in paths:
        if path.is_dir():
            total += sum(1 for f in path.rglob("*") if f.is_file() and not f.name.startswith("."))
        else:
            total += 1
    return total


def reject_reason(raw: bytes) -> str | None:
    if not raw.strip():
        return "empty file"
    head = raw[:4096].split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    first = head.split(b"\n", 1)[0]
    if b":" not in first:
        return "not an e-mail message: the first line is not a header"
    return None


def ingest_paths(
    services: Services,
    account_id: str,
    paths: list[Path],
    mode: DeliveryMode = DeliveryMode.API,
    on_item: Callable[[Item, str], None] | None = None,
) -> IngestSummary:
    summary = IngestSummary()
    for item in iter_items(paths):
        outcome = "failed"
        if item.raw is None:
            summary.failed.append((item.label, item.error or "unreadable"))
        elif (reason := reject_reason(item.raw)) is not None:
            summary.failed.append((item.label, reason))
        elif len(item.raw) > services.settings.max_message_bytes:
            summary.failed.append(
                (item.label, f"larger than max_message_bytes ({services.settings.max_message_bytes})")
            )
        else:
            try:
                result = process_message(services, item.raw, account_id, mode=mode, source=Path(item.label).name)
            except Exception as exc:  # a storage failure for one message must not end the run
                summary.failed.append((item.label, f"{type(exc).__name__}: {exc}"))
            else:
                if result.duplicate:
                    summary.duplicates += 1
                    outcome = "duplicate"
                else:
                    summary.stored += 1
                    summary.ids.append(result.id)
                    outcome = "stored"
        if on_item:
            on_item(item, outcome)
    return summary
