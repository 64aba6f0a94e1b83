"""Strict JSON reading that keeps what Python's parser would hide (spec §2.3).

Python's ``json`` accepts a UTF-8 BOM, ``NaN``/``Infinity`` and lone surrogates, and
silently keeps the last of duplicate keys.  Go's decoder (what Docker used) rejects the
first three and also lets keys match fields case-insensitively with Unicode folding.
Here the first two are refused, duplicates are reported with their JSON path, and the
rest is left to the callers that know which field names matter.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["JSONError", "loads_strict", "DupDict", "json_path", "go_fold"]

_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class JSONError(ValueError):
    """Not JSON as mfkit accepts it.

    Attributes:
        offset: byte offset where it went wrong, when known.
        code: ``json.bom``, ``json.invalid-utf8``, ``json.nan``, ``json.trailing-data``,
            ``json.too-deep`` or ``json.invalid``.
    """

    def __init__(self, message: str, offset: int | None = None, code: str = "json.invalid") -> None:
        super().__init__(message)
        self.offset = offset
        self.code = code


class DupDict(dict):
    """A dict that remembers the keys that occurred more than once in its object."""

    __slots__ = ("dups",)


_DUPS_SEEN = [0]  # bumped by the hook; a change during one parse means "walk for duplicates"


def _hook(pairs: list[tuple[str, Any]]) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        _DUPS_SEEN[0] += 1
        out = DupDict(d)
        seen: set[str] = set()
        out.dups = sorted({k for k, _ in pairs if k in seen or seen.add(k)})  # type: ignore[func-returns-value]
        return out
    return d


class _NumberError(ValueError):
    """A number Go's decoder refuses: NaN/Infinity, or a float out of range."""


def _no_constant(name: str) -> Any:
    raise _NumberError(f"{name} is not JSON")


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # Go: "value out of range"
        raise _NumberError(f"number {text[:40]} is out of range")
    return value


_DECODER = json.JSONDecoder(object_pairs_hook=_hook, parse_constant=_no_constant, parse_float=_float)
_LONE = re.compile("[\ud800-\udfff]")


def loads_strict(data: bytes | str) -> tuple[Any, list[tuple[str, str]]]:
    """Parse ``data`` (bytes, or text already decoded) as one JSON value.

    Returns:
        The value and a list of ``(kind, detail)`` anomalies: ``duplicate-key`` with the
        JSON path, ``lone-surrogate``.

    Raises:
        JSONError: BOM, invalid UTF-8, NaN/Infinity, syntax error or trailing data, with
            the byte offset where it went wrong.
    """
    if isinstance(data, str):
        text = data
        if text.startswith("\ufeff"):
            raise JSONError("starts with a byte order mark", 0, "json.bom")
    else:
        if data.startswith(_BOM):
            raise JSONError("starts with a UTF-8 byte order mark (Go refuses it; Python would shift every offset by 3)",
                            0, "json.bom")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError(f"invalid UTF-8 at byte {exc.start}", exc.start, "json.invalid-utf8") from None
    before = _DUPS_SEEN[0]
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        offset = len(text[: exc.pos].encode("utf-8"))
        code = "json.trailing-data" if exc.msg == "Extra data" else "json.invalid"
        raise JSONError(f"{exc.msg} at byte {offset}", offset, code) from None
    except RecursionError:
        raise JSONError("nesting too deep", None, "json.too-deep") from None
    except _NumberError as exc:  # NaN, Infinity, out-of-range floats: Go rejects them
        raise JSONError(str(exc), None, "json.nan") from None
    except ValueError as exc:  # e.g. an integer longer than Python's digit limit
        raise JSONError(f"unreadable number: {exc}", None, "json.invalid") from None
    anomalies: list[tuple[str, str]] = []
    if "\\u" in text and _SURROGATE.search(text):
        # Lone surrogates decode to U+FFFD in Go; here too, so nothing downstream holds
        # text that cannot be encoded (spec §2.3).  Paired escapes are a normal character.
        value, paths = _replace_lone(value, "$")
        anomalies.extend(("lone-surrogate", p) for p in paths)
    if _DUPS_SEEN[0] != before and _has_dups(value):
        for path, key in _walk_dups(value, "$"):
            anomalies.append(("duplicate-key", f"{path}.{key}" if path else key))
    return value, anomalies


def _replace_lone(value: Any, path: str) -> tuple[Any, list[str]]:
    found: list[str] = []

    def fix(v: Any, p: str) -> Any:
        if isinstance(v, str):
            if _LONE.search(v):
                found.append(p)
                return _LONE.sub("\ufffd", v)
            return v
        if isinstance(v, list):
            return [fix(x, f"{p}[{i}]") for i, x in enumerate(v)]
        if isinstance(v, dict):
            out = type(v)((fix(k, f"{p}.<key>"), fix(x, f"{p}.{k}")) for k, x in v.items())
            if isinstance(v, DupDict):
                out.dups = v.dups  # type: ignore[attr-defined]
            return out
        return v

    return fix(value, path), found


def _has_dups(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if isinstance(v, DupDict):
                return True
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _walk_dups(value: Any, path: str):
    stack = [(value, path)]
    while stack:
        v, p = stack.pop()
        if isinstance(v, dict):
            if isinstance(v, DupDict):
                for k in v.dups:
                    yield p, k
            for k, child in v.items():
                stack.append((child, f"{p}.{k}"))
        elif isinstance(v, list):
            for i, child in enumerate(v):
                stack.append((child, f"{p}[{i}]"))


def json_path(*parts: str | int) -> str:
    """Build ``$.a[0].b`` from parts (ints are indexes)."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


_FOLD = str.maketrans({"\u017f": "s", "\u212a": "k"})


def go_fold(key: str) -> str:
    """Fold ``key`` the way Go's encoding/json matches struct fields (ſ→s, K→k, case)."""
    return key.translate(_FOLD).lower()
