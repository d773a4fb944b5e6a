"""The safe renderer: a stored message to a PNG, with no script and no network (see docs/preview.md)."""

from mailsec.preview.document import PreviewDocument, RemoteResource, build_document
from mailsec.preview.errors import PreviewBusy, PreviewError, PreviewTimeout, PreviewTooLarge, PreviewUnavailable
from mailsec.preview.renderer import Rendered, Renderer
from mailsec.preview.service import Preview, PreviewService

__all__ = [
    "Preview",
    "PreviewBusy",
    "PreviewDocument",
    "PreviewError",
    "PreviewService",
    "PreviewTimeout",
    "PreviewTooLarge",
    "PreviewUnavailable",
    "RemoteResource",
    "Rendered",
    "Renderer",
    "build_document",
]
