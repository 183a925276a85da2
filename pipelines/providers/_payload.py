"""Helpers for the shapes response bodies come in.

PressOne documents Laravel-style bodies (``{"data": ..., "meta": ...}``) and, for errors, its
own envelope ``{"success": false, "code": ..., "message": ..., "data": null, "timestamp": ...}``.
Whether success bodies are wrapped in that envelope too is unconfirmed, so both forms are
accepted everywhere: the envelope's ``data`` may be the whole Laravel body or only its ``data``.
"""

from __future__ import annotations

from typing import Any

from ._errors import EnvelopeFailure
from ._scalars import as_str

__all__ = ["error_details", "unwrap_envelope", "unwrap_resource"]

# Keys of the wrappers around a resource; a dict made only of these is a wrapper, not a record.
_WRAPPER_KEYS = frozenset({"data", "meta", "links", "success", "code", "message", "timestamp"})


def is_envelope(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("success"), bool)
        and any(k in body for k in ("data", "code", "timestamp"))
    )


def unwrap_envelope(body: Any) -> tuple[Any, dict[str, Any] | None]:
    """``(inner, envelope)``: the envelope's ``data`` and the envelope itself, or the body
    unchanged and ``None``. Raises :class:`EnvelopeFailure` for ``"success": false``."""
    if not is_envelope(body):
        return body, None
    if body["success"] is False:
        message, code = error_details(body)
        raise EnvelopeFailure(message or "request rejected", code)
    return body.get("data"), body


def unwrap_resource(body: Any) -> Any:
    """The resource inside an envelope and/or a ``{"data": ..., "meta": ...}`` wrapper."""
    inner, _ = unwrap_envelope(body)
    if (
        isinstance(inner, dict)
        and isinstance(inner.get("data"), dict | list)
        and inner.keys() <= _WRAPPER_KEYS
    ):
        inner = inner["data"]
    return inner


def error_details(body: Any) -> tuple[str | None, str | None]:
    """``(message, code)`` from an error body of either provider."""
    if not isinstance(body, dict):
        return None, None
    meta = body.get("meta")
    candidates = (
        body.get("error"),
        body.get("message"),
        meta.get("message") if isinstance(meta, dict) else None,
    )
    message = next((c for c in candidates if isinstance(c, str) and c.strip()), None)
    errors = body.get("errors")
    if isinstance(errors, dict) and errors:
        fields = ", ".join(str(k) for k in list(errors)[:5])
        message = f"{message or 'invalid fields'} ({fields})"
    return message, as_str(body.get("code"))
