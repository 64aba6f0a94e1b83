"""Make document-derived text safe to show (terminal, Markdown): hostile manifests carry it.

Signed fields can hold ANSI escape sequences, carriage returns, backspaces, line breaks and
bidirectional overrides that would forge or hide report lines.  Every human-readable renderer
passes such text through :func:`printable` first.
"""

from __future__ import annotations

import re

__all__ = ["printable", "markdown_text"]

# C0 and C1 controls, DEL, and the Unicode format characters that reorder or hide text
# (bidi embeddings/overrides/isolates, zero-width marks, BOM, line/paragraph separators).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def _escape(match: re.Match) -> str:
    ch = match.group(0)
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``str(text)`` with every control or reordering character shown as an escape (``\\x1b``)."""
    s = text if isinstance(text, str) else str(text)
    return _UNSAFE.sub(_escape, s) if _UNSAFE.search(s) else s


def markdown_text(text: object) -> str:
    """:func:`printable`, then Markdown metacharacters escaped (no links, images or emphasis)."""
    return _MD_SPECIAL.sub(r"\\\1", printable(text))
