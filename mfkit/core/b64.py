"""base64url exactly as libtrust reads it, with the leniencies reported (spec §1.5)."""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["B64Error", "b64url_decode", "b64url_encode", "b64std_decode"]

_URL_ALPHABET = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_STD_ALPHABET = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URL_VALUE = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}


class B64Error(ValueError):
    """The text is not base64 the way libtrust would accept it."""


def b64url_encode(data: bytes) -> bytes:
    """Canonical unpadded base64url, as libtrust's encoder writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64url_decode(text: str) -> tuple[bytes, list[str]]:
    """Decode like libtrust's ``joseBase64UrlDecode`` and list its leniencies.

    Python's decoder silently drops characters outside the alphabet, so the alphabet is
    checked here first (spec §1.5).  Returns the bytes and a list of anomalies:
    ``padded`` (``=`` present) and ``non-canonical`` (non-zero unused trailing bits).

    Raises:
        B64Error: characters outside the alphabet, or a length libtrust refuses.
    """
    if not isinstance(text, str):
        raise B64Error("not a string")
    s = text.replace("\n", "").replace(" ", "") if ("\n" in text or " " in text) else text
    if not _URL_ALPHABET.fullmatch(s):
        raise B64Error("characters outside the base64url alphabet")
    anomalies = []
    # libtrust: r = len % 4; 1 is illegal, 2 and 3 get "==" / "=" appended (spec §1.5).
    r = len(s) % 4
    if r == 1:
        raise B64Error("illegal base64url length")
    padded = s + ("", "", "==", "=")[r]
    core = padded.rstrip("=")
    if len(padded) - len(core) != (-len(core)) % 4:
        raise B64Error("misplaced base64url padding")
    if "=" in s:
        anomalies.append("padded")
    try:
        data = base64.urlsafe_b64decode(core + "=" * (-len(core) % 4))
    except binascii.Error as exc:  # pragma: no cover - alphabet and length already checked
        raise B64Error(str(exc)) from exc
    # Unused low bits of the last character must be zero in canonical form (Go is lenient).
    if len(core) % 4 and _URL_VALUE[core[-1]] & (0x0F if len(core) % 4 == 2 else 0x03):
        anomalies.append("non-canonical")
    return data, anomalies


def b64std_decode(text: str) -> bytes:
    """Decode standard padded base64 (``x5c`` certificates), strictly.

    Raises:
        B64Error: not valid standard base64.
    """
    if not isinstance(text, str) or not _STD_ALPHABET.fullmatch(text) or len(text) % 4:
        raise B64Error("not standard padded base64")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise B64Error(str(exc)) from exc
