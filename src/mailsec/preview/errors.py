"""Why a preview could not be made. Each error carries the HTTP status and code the API answers with, so the
API stays a thin face and the CLI can print the same sentence."""

from __future__ import annotations


class PreviewError(Exception):
    status = 500
    code = 1500
    retry_after: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PreviewUnavailable(PreviewError):
    """No usable browser: Chromium is missing or does not start."""

    status = 503
    code = 1503


class PreviewBusy(PreviewError):
    """Every page of the pool stayed busy for the whole time budget."""

    status = 503
    code = 1504
    retry_after = 2


class PreviewTimeout(PreviewError):
    """The render did not finish within its time budget; the page was thrown away."""

    status = 504
    code = 1505


class PreviewTooLarge(PreviewError):
    status = 413
    code = 1413


class RenderFailed(PreviewError):
    """The browser failed on this message (it crashed twice, or answered an error)."""

    status = 502
    code = 1502
