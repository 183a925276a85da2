"""Reading response bodies within limits, and the shapes they come in.

Every 2xx body is read with a cap on its size (:func:`read_capped`, the decoded bytes, so a
compressed bomb is cut too), its bracket nesting is measured on the bytes before any parser
runs (:func:`nesting_depth`: the standard ``json`` module recurses once per level and fails
with ``RecursionError`` a thousand levels down), and only then is it decoded
(:func:`decode_body`). A body refused on the way raises :class:`BodyRejected`; the request layer
keeps it in the client's :class:`QuarantineBox` (:func:`quarantine_record`) and retries it like
any other transient bad answer.

PressOne documents Laravel-style bodies (``{"data": ..., "meta": ...}``) and, for errors, its
own envelope ``{"success": false, "code": ..., "message": ..., "data": null, "timestamp": ...}``.
Whether success bodies are wrapped in that envelope too is unconfirmed, so both forms are
accepted everywhere: the envelope's ``data`` may be the whole Laravel body or only its ``data``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from typing import Any

from ._errors import BodyRejected, EnvelopeFailure, redact, redact_json
from ._records import Quarantined
from ._scalars import as_str

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_JSON_DEPTH",
    "RAW_KEEP_CHARS",
    "PayloadLimits",
    "QuarantineBox",
    "decode_body",
    "error_details",
    "nesting_depth",
    "quarantine_record",
    "read_capped",
    "unwrap_envelope",
    "unwrap_resource",
]

# The largest list page of either provider is well under 1 MiB (100 orders); 8 MiB leaves room
# for providers that add fields, and still bounds what one answer can cost.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
# The documented bodies nest 5 levels deep (envelope, data, order, sims, sim).
DEFAULT_MAX_JSON_DEPTH = 64
# How much of a refused body the quarantine keeps.
RAW_KEEP_CHARS = 65_536

# A JSON string (escapes included), and every byte that is not a bracket.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_OPENING = frozenset(b"[{")
# An escaped UTF-16 surrogate: the body may hold a lone one, which is not text.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


@dataclass(frozen=True, slots=True)
class PayloadLimits:
    """What a client accepts in one answer: ``max_body_bytes`` (decoded) and
    ``max_json_depth`` (nested arrays and objects)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or self.max_json_depth < 1:
            raise ValueError("max_body_bytes and max_json_depth must be at least 1")


async def read_capped(chunks: AsyncIterable[bytes], limit: int) -> tuple[bytes, int, bool]:
    """``(content, received, over)``: at most ``limit`` bytes of ``chunks``; reading stops as
    soon as more arrive (``over``), ``received`` counting the bytes read until then."""
    parts: list[bytes] = []
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            parts.append(chunk[: max(0, len(chunk) - (received - limit))])
            return b"".join(parts), received, True
        parts.append(chunk)
    return b"".join(parts), received, False


def _deepest(brackets: bytes, limit: int | None) -> int:
    """The deepest level of a run of brackets; with a ``limit``, the first level past it."""
    deepest = 0
    for level in accumulate(1 if byte in _OPENING else -1 for byte in brackets):
        if level > deepest:
            deepest = level
            if limit is not None and level > limit:
                break
    return deepest


def nesting_depth(content: bytes, limit: int | None = None) -> int:
    """The deepest bracket nesting of ``content`` outside JSON strings, without parsing it
    (an upper bound of what a parser would meet before any syntax error); with a ``limit``,
    counting stops at the first level past it, which is returned.

    With a ``limit``, brackets are first counted as they come, strings and all (cheap); only
    a body that then looks too deep is counted again with its strings left out. (Brackets
    inside strings can make an adversarial body look shallower to the first count: the
    decoder's own recursion guard stays behind it, see :func:`decode_body`.)
    """
    if limit is not None:
        quick = _deepest(content.translate(None, _NOT_BRACKETS), limit)
        if quick <= limit:
            return quick
    return _deepest(_JSON_STRING.sub(b"", content).translate(None, _NOT_BRACKETS), limit)


def decode_body(content: bytes, limits: PayloadLimits, *, over: bool = False) -> Any:
    """The decoded JSON of a body read by :func:`read_capped`; :class:`BodyRejected` when it
    was too large (``over``), nests too deep, is not JSON, or holds text that is not text."""
    if over:
        raise BodyRejected(
            f"body larger than {limits.max_body_bytes} bytes (the client's maximum body size)",
            kind="too_large",
        )
    depth = nesting_depth(content, limits.max_json_depth)
    if depth > limits.max_json_depth:
        raise BodyRejected(
            f"JSON nested more than {limits.max_json_depth} levels deep (the client's maximum)",
            kind="too_deep",
        )
    try:
        body = json.loads(content)
    except RecursionError:
        raise BodyRejected(
            "JSON nested deeper than the decoder allows (brackets hidden in strings)",
            kind="too_deep",
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise BodyRejected(
            f"a body that is not valid JSON ({len(content)} bytes)", kind="not_json"
        ) from None
    if _SURROGATE_ESCAPE.search(content):
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BodyRejected(
                "a JSON string holds an unpaired UTF-16 surrogate (not text)", kind="not_text"
            ) from None
    return body


class QuarantineBox:
    """The quarantined answers and records of one client, until the caller takes them."""

    def __init__(self) -> None:
        self._items: list[Quarantined] = []

    def add(self, item: Quarantined) -> None:
        self._items.append(item)

    def drain(self) -> list[Quarantined]:
        """Everything added since the last drain, oldest first."""
        items, self._items = self._items, []
        return items

    def __len__(self) -> int:
        return len(self._items)


def quarantine_record(
    raw: bytes | str | Any,
    *,
    provider: str,
    source_endpoint: str,
    http_status: int | None,
    kind: str,
    reason: str,
    fetched_at: datetime,
    secrets: tuple[str, ...] = (),
    raw_bytes: int | None = None,
    record_key: str | None = None,
    page: int | None = None,
) -> Quarantined:
    """A :class:`Quarantined` record of ``raw`` (bytes as received, text, or a decoded JSON
    value, re-serialized), secrets masked, cut to ``RAW_KEEP_CHARS`` characters."""
    if isinstance(raw, bytes):
        size = len(raw)
        text = raw[: RAW_KEEP_CHARS * 4].decode("utf-8", "replace")
    elif isinstance(raw, str):
        text = raw
        size = len(raw.encode("utf-8", "surrogatepass"))
    else:
        # Masked value by value before serializing, so the record stays valid JSON; ASCII
        # escapes keep lone surrogates storable.
        text = json.dumps(redact_json(raw, secrets), separators=(",", ":"), default=str)
        size = len(text)
    if isinstance(raw, bytes | str):
        # Masked before the cut, so a cut cannot leave part of a secret visible.
        kept = redact(text[: RAW_KEEP_CHARS + 512], secrets)[:RAW_KEEP_CHARS]
    else:
        kept = text[:RAW_KEEP_CHARS]
    return Quarantined(
        provider=provider,
        source_endpoint=source_endpoint,
        http_status=http_status,
        kind=kind,
        reason=reason,
        raw=kept,
        raw_bytes=raw_bytes if raw_bytes is not None else size,
        truncated=len(text) > RAW_KEEP_CHARS or (raw_bytes or size) > size,
        fetched_at=fetched_at,
        record_key=record_key,
        page=page,
    )


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
