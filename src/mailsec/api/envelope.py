"""The Cloudflare v4 response envelope and the error type every handler raises."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Source(BaseModel):
    pointer: str | None = None


class ResponseInfo(BaseModel):
    code: int = Field(ge=1000)
    message: str
    documentation_url: str | None = None
    source: Source | None = None


class Envelope(BaseModel, Generic[T]):
    success: bool = True
    errors: list[ResponseInfo] = []
    messages: list[ResponseInfo] = []
    result: T


class ResultInfo(BaseModel):
    count: int
    per_page: int
    page: int = 0
    total_count: int = 0
    next: str | None = None
    previous: str | None = None


class ListEnvelope(Envelope[T], Generic[T]):
    result_info: ResultInfo


class ErrorEnvelope(BaseModel):
    success: bool = False
    errors: list[ResponseInfo]
    messages: list[ResponseInfo] = []
    result: None = None


class APIError(Exception):
    """Raised anywhere below a route; rendered as the standard failure envelope."""

    def __init__(
        self, status: int, code: int, message: str, headers: dict[str, str] | None = None, pointer: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.pointer = pointer

    def body(self) -> dict[str, Any]:
        info: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.pointer:
            info["source"] = {"pointer": self.pointer}
        return {"success": False, "errors": [info], "messages": [], "result": None}


def ok(result: Any) -> dict[str, Any]:
    return {"success": True, "errors": [], "messages": [], "result": result}


def not_found(what: str) -> APIError:
    return APIError(404, 7003, f"Could not route to {what}, perhaps your object identifier is invalid?")


def bad_request(message: str, pointer: str | None = None) -> APIError:
    return APIError(400, 1001, message, pointer=pointer)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": desc}
    for status, desc in (
        (400, "Bad request or missing credentials"),
        (403, "Invalid credential or no access to this account"),
        (404, "Not found"),
        (429, "Rate limited; see retry-after"),
        (500, "Unexpected error"),
    )
}
