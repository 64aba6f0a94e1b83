"""The one record every input becomes: an HTTP response (or a bare file) as saved.

Bare files, ``curl -i`` transcripts and fetch captures all turn into :class:`Response`,
so the analysis cannot tell them apart (style anchor: one ``Source`` shape).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Response", "header_value", "media_type"]


@dataclass(frozen=True, slots=True)
class Response:
    """One saved body and whatever evidence came with it.

    Attributes:
        source: where it came from, e.g. ``path`` or ``transcript.txt#3``.
        body: the exact bytes, never re-serialized.
        status: the HTTP status, or None for a bare file.
        headers: response headers in the order received, as (name, value) pairs.
        url: the request URL when known.
        method: the request method when known.
        accept: the Accept header sent, when known.
        fetched_at: RFC 3339 time of the request, when known.
        reference: the reference the user asked for, when known.
        grant: decoded claims of the token used (never the token itself).
        body_offset: byte offset of the body inside ``source`` (transcripts).
        meta: any other facts the reader kept (e.g. capture format version).
    """

    source: str
    body: bytes
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    url: str | None = None
    method: str | None = None
    accept: str | None = None
    fetched_at: str | None = None
    reference: str | None = None
    grant: dict[str, Any] | None = None
    body_offset: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """Return the last value of header ``name`` (case-insensitive), or None."""
        return header_value(self.headers, name)

    @property
    def content_type(self) -> str | None:
        """The media type of ``Content-Type`` without parameters, lower-cased."""
        return media_type(self.header("content-type"))


def header_value(headers: tuple[tuple[str, str], ...] | list, name: str) -> str | None:
    """Return the last value of ``name`` in ``headers`` (case-insensitive), or None."""
    low = name.lower()
    found = None
    for key, value in headers:
        if key.lower() == low:
            found = value
    return found


def media_type(value: str | None) -> str | None:
    """Strip parameters (``; charset=utf-8``) from a Content-Type value (spec §6.4)."""
    if not value:
        return None
    return value.split(";", 1)[0].strip().lower() or None
