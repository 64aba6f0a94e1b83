"""Split an HTTP transcript (``curl -i`` output, one or several exchanges) into responses.

A response is a status line (``HTTP/1.1 200 OK``, ``HTTP/2 200``), header lines up to a
blank line, and a body of exactly ``Content-Length`` bytes.  Without Content-Length the
body runs to the next status line or shell prompt and the response says it was unbounded.
Offsets are byte offsets into the transcript.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TranscriptResponse", "looks_like_transcript", "split_transcript", "redact_url", "dechunk"]

_STATUS = re.compile(rb"(?m)^HTTP/(\d(?:\.\d)?) (\d{3})(?: ([^\r\n]*))?\r?\n")
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*)\r?\n")
_BLANK = re.compile(rb"\r?\n")
_URL = re.compile(rb"(https?://[^\s'\"]+)")
_USERINFO = re.compile(r"^(https?://)[^/@]*@")
_METHOD = re.compile(rb"(?:-X|--request)\s+([A-Z]+)")
_PROMPT = re.compile(rb"(?m)^(?:\S*[@:][^\n]{0,80}[#$] |[$#] |>>> )")
_SECRET_PARAM = re.compile(r"(?i)([?&](?:[^=&#]*(?:token|password|passwd|secret|signature|credential|auth|sig|key)[^=&#]*)=)[^&#]*")


@dataclass(frozen=True, slots=True)
class TranscriptResponse:
    """One response found in a transcript.

    Attributes:
        status: HTTP status code.
        reason: reason phrase.
        headers: (name, value) pairs in order.
        body: the body bytes.
        body_offset: byte offset of the body in the transcript.
        bounded: True when Content-Length bounded the body.
        url: the URL of the command that preceded it, when one is visible.
        method: the method of that command (``-X``), default GET.
        declared_length: the Content-Length value, when present.
        notes: framing problems met (conflicting or short Content-Length, chunked framing).
    """

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    body_offset: int
    bounded: bool
    url: str | None
    method: str | None
    declared_length: int | None
    notes: tuple[str, ...] = ()


def redact_url(url: str) -> str:
    """Drop ``user:password@`` and the values of query parameters that look secret."""
    return _SECRET_PARAM.sub(r"\1<redacted>", _USERINFO.sub(r"\1", url))


_CHUNK = re.compile(rb"([0-9A-Fa-f]{1,8})(?:;[^\r\n]*)?\r?\n")


def dechunk(body: bytes) -> bytes | None:
    """Undo HTTP/1.1 chunked framing (``curl --raw`` output); None when the body is not framed so."""
    out, pos = [], 0
    while True:
        m = _CHUNK.match(body, pos)
        if not m:
            return None
        size = int(m.group(1), 16)
        start = m.end()
        if size == 0:
            return b"".join(out)
        if start + size > len(body):
            return None
        out.append(body[start : start + size])
        pos = start + size
        nl = re.match(rb"\r?\n", body[pos : pos + 2])
        if not nl:
            return None
        pos += nl.end()


def looks_like_transcript(data: bytes) -> bool:
    """True when the bytes hold an HTTP status line and do not start as a JSON document."""
    head = data[:65536].lstrip()
    if head[:1] in (b"{", b"["):
        return False
    return _STATUS.search(head) is not None


def split_transcript(data: bytes) -> list[TranscriptResponse]:
    """Find every response in ``data``; interim 1xx responses are skipped.  Never raises."""
    out: list[TranscriptResponse] = []
    pos = 0
    prev_end = 0
    while True:
        m = _STATUS.search(data, pos)
        if not m:
            break
        status = int(m.group(2))
        reason = (m.group(3) or b"").decode("latin-1").strip()
        headers: list[tuple[str, str]] = []
        p = m.end()
        while True:
            h = _HEADER.match(data, p)
            if not h:
                break
            headers.append((h.group(1).decode("latin-1"), h.group(2).decode("latin-1").strip()))
            p = h.end()
        blank = _BLANK.match(data, p)
        if not blank:  # headers ran into something else: not a response we can bound
            pos = p if p > m.start() else m.end()
            continue
        body_start = blank.end()
        context = data[prev_end : m.start()]
        urls = _URL.findall(context)
        meth = _METHOD.findall(context)
        # Shell escapes (``\&``) removed; user:password@ and secret query values never kept.
        url = redact_url(urls[-1].replace(b"\\", b"").decode("latin-1")) if urls else None
        method = meth[-1].decode() if meth else ("GET" if url else None)
        lengths = [v for n, v in headers if n.lower() == "content-length"]
        length = int(lengths[-1]) if lengths and lengths[-1].isdigit() else None
        notes = []
        if len(set(lengths)) > 1:
            notes.append("conflicting Content-Length headers: " + ", ".join(lengths))
        elif lengths and length is None:
            notes.append(f"Content-Length {lengths[-1]!r} is not a length")
        if 100 <= status < 200:
            pos = body_start
            continue
        if length is not None and body_start + length <= len(data) and len(set(lengths)) == 1:
            body, bounded, end = data[body_start : body_start + length], True, body_start + length
        else:
            nxt = _STATUS.search(data, body_start)
            stop = nxt.start() if nxt else len(data)
            prompt = _PROMPT.search(data, body_start, stop)
            stop = prompt.start() if prompt else stop
            body, bounded, end = data[body_start:stop], False, stop
            if length is not None and body_start + length > len(data):
                notes.append(f"Content-Length says {length} bytes but only {len(data) - body_start} follow")
        chunked = any(n.lower() == "transfer-encoding" and "chunked" in v.lower() for n, v in headers)
        if chunked:
            plain = dechunk(body)
            if plain is not None:
                body = plain
                notes.append("chunked framing removed")
        out.append(TranscriptResponse(status, reason, tuple(headers), body, body_start, bounded, url, method, length,
                                      tuple(notes)))
        pos = prev_end = end
    return out
