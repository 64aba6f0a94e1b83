"""Registry token authentication, the pure parts (spec §5.2-§5.5).

* :func:`parse_www_authenticate` - challenges from one or more ``WWW-Authenticate`` lines.
* :func:`parse_token_response` - the token service's JSON answer.
* :func:`decode_grant` - JWT claims for forensic display only; the token string is never kept
  in the result (spec §5.5: clients treat tokens as opaque).
* :func:`missing_actions` / :func:`empty_grant_error` - Harbor answers 200 with an empty grant
  when the password is wrong; say so clearly.
* :func:`redact_token_body` / :func:`redact_headers` - what may be written to disk.

No I/O, no clock: callers pass ``now``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import AuthError
from .timefmt import parse_datetime

__all__ = [
    "Challenge",
    "parse_www_authenticate",
    "TokenResponse",
    "parse_token_response",
    "decode_grant",
    "missing_actions",
    "empty_grant_error",
    "redact_token_body",
    "redact_headers",
    "SECRET_TOKEN_FIELDS",
    "MIN_EXPIRES_IN",
]

MIN_EXPIRES_IN = 60  # spec §5.4: default and floor
SECRET_TOKEN_FIELDS = ("token", "access_token", "refresh_token", "id_token")
_SECRET_HEADERS = {"authorization", "proxy-authorization", "set-cookie", "cookie", "x-registry-auth"}
_TCHAR = set("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One authentication challenge: lower-cased scheme and lower-cased parameter names."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        """The ``realm`` parameter."""
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        """The ``service`` parameter (may be absent: then it is not sent)."""
        return self.params.get("service")

    @property
    def scopes(self) -> list[str]:
        """Scopes named by the challenge (space-separated in one value, spec §5.2)."""
        return [s for s in self.params.get("scope", "").split(" ") if s]

    @property
    def error(self) -> str | None:
        """``invalid_token``, ``insufficient_scope``... or None."""
        return self.params.get("error")


class _Lexer:
    def __init__(self, text: str) -> None:
        self.s, self.i = text, 0

    def skip(self, chars: str = " \t") -> None:
        while self.i < len(self.s) and self.s[self.i] in chars:
            self.i += 1

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def token(self) -> str:
        start = self.i
        while self.i < len(self.s) and self.s[self.i] in _TCHAR:
            self.i += 1
        return self.s[start:self.i]

    def quoted(self) -> str | None:
        # RFC 7230 quoted-string; backslash escapes any character
        self.i += 1
        out = []
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch == "\\" and self.i + 1 < len(self.s):
                out.append(self.s[self.i + 1])
                self.i += 2
                continue
            if ch == '"':
                self.i += 1
                return "".join(out)
            out.append(ch)
            self.i += 1
        return None  # unterminated


def _parse_line(line: str) -> list[Challenge]:
    lex = _Lexer(line)
    out: list[Challenge] = []
    while True:
        lex.skip(" \t,")
        scheme = lex.token()
        if not scheme:
            break
        params: dict[str, str] = {}
        malformed = False
        while True:
            lex.skip(" \t,")
            mark = lex.i
            name = lex.token()
            if not name:
                malformed = bool(lex.peek())
                break
            lex.skip()
            if lex.peek() != "=":
                lex.i = mark  # a bare token: the next challenge's scheme
                break
            lex.i += 1
            lex.skip()
            value = lex.quoted() if lex.peek() == '"' else lex.token()
            if value is None:
                malformed = True
                break
            params[name.lower()] = value
        out.append(Challenge(scheme.lower(), params))
        if malformed:
            break  # spec §5.2: stop at the first malformed param
    return out


def parse_www_authenticate(values: str | Iterable[str]) -> list[Challenge]:
    """Parse one header value or several header lines into challenges, in order.

    Scheme and parameter names are lower-cased; values may be tokens or quoted strings
    with backslash escapes and commas; several challenges on one line are split
    (RFC 7235), and each extra line adds its own.
    """
    lines = [values] if isinstance(values, str) else list(values)
    out: list[Challenge] = []
    for line in lines:
        out.extend(_parse_line(line))
    return out


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A parsed token answer. ``token`` is the secret; keep it in memory only.

    Attributes:
        token: the bearer token (``token`` preferred over ``access_token``).
        expires_in: seconds, at least 60.
        issued_at: the server's RFC 3339 ``issued_at`` or None.
        expires_at: POSIX seconds when the token should be considered expired.
        has_refresh_token: whether a refresh token came back (it is never kept).
        notes: oddities worth recording (both fields present and different...).
    """

    token: str = field(repr=False)
    expires_in: int
    issued_at: str | None
    expires_at: float
    has_refresh_token: bool = False
    notes: tuple[str, ...] = ()


def _parse_time(text: str) -> float | None:
    when = parse_datetime(text)
    return when.timestamp() if when is not None else None


def parse_token_response(body: bytes, *, now: float) -> TokenResponse:
    """Parse ``{"token"|"access_token", "expires_in", "issued_at"}`` (spec §5.4).

    ``expires_in`` defaults to 60 and is raised to 60; expiry counts from ``issued_at``
    when it is plausible (within a minute of ``now``), else from ``now``.

    Raises:
        AuthError: not JSON, or neither ``token`` nor ``access_token``.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuthError("the token service answered something that is not JSON", code="auth.token-body") from exc
    if not isinstance(doc, dict):
        raise AuthError("the token service answered JSON that is not an object", code="auth.token-body")
    notes = []
    token, access = doc.get("token"), doc.get("access_token")
    if isinstance(token, str) and isinstance(access, str) and token and access and token != access:
        notes.append("token and access_token differ; token used")
    chosen = token if isinstance(token, str) and token else access
    if not isinstance(chosen, str) or not chosen:
        raise AuthError("the token service answered without a token", code="auth.no-token")
    raw = doc.get("expires_in")
    expires_in = raw if isinstance(raw, int) and not isinstance(raw, bool) else MIN_EXPIRES_IN
    expires_in = max(expires_in, MIN_EXPIRES_IN)
    issued_at = doc.get("issued_at") if isinstance(doc.get("issued_at"), str) else None
    start = _parse_time(issued_at) if issued_at else None
    if start is None or abs(start - now) > 60:
        start = now
    return TokenResponse(chosen, expires_in, issued_at, start + expires_in,
                         has_refresh_token=bool(doc.get("refresh_token")), notes=tuple(notes))


def _b64json(part: str) -> Any:
    pad = "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(part + pad))


def _rfc3339(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(value, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            return None
    return None


def decode_grant(token: str, *, scopes: list[str] | None = None) -> dict[str, Any]:
    """Decode a JWT's header and claims into a ``grant`` dict (no signature check, no token).

    Keys: ``format`` (``jwt``/``opaque``), ``alg``, ``key_id``, ``issuer``, ``subject``,
    ``audience``, ``access`` (list of ``{type, name, actions}``), ``expires_at``,
    ``not_before``, ``issued_at``, ``jwt_id``, ``requested_scopes``.
    """
    grant: dict[str, Any] = {"format": "opaque", "requested_scopes": list(scopes or [])}
    parts = token.split(".")
    if len(parts) != 3:
        return grant
    try:
        header, claims = _b64json(parts[0]), _b64json(parts[1])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return grant
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return grant
    access = []
    for item in claims.get("access") or []:
        if isinstance(item, dict):
            acts = item.get("actions")
            access.append({"type": str(item.get("type", "")), "name": str(item.get("name", "")),
                           "actions": [str(a) for a in acts] if isinstance(acts, list) else []})
    aud = claims.get("aud")
    grant.update({
        "format": "jwt",
        "alg": header.get("alg"),
        "key_id": header.get("kid"),
        "issuer": claims.get("iss"),
        "subject": claims.get("sub"),
        "audience": aud if isinstance(aud, (str, list)) else None,
        "access": access,
        "expires_at": _rfc3339(claims.get("exp")),
        "not_before": _rfc3339(claims.get("nbf")),
        "issued_at": _rfc3339(claims.get("iat")),
        "jwt_id": claims.get("jti") if isinstance(claims.get("jti"), str) else None,
    })
    return grant


def _split_scope(text: str) -> tuple[str, str, list[str]] | None:
    # spec §5.7: type before the first ':', actions after the last ':'
    first, last = text.find(":"), text.rfind(":")
    if first <= 0 or last == first:
        return None
    return text[:first], text[first + 1:last], [a for a in text[last + 1:].split(",") if a]


def missing_actions(grant: dict[str, Any], scope: str) -> list[str]:
    """Actions of ``scope`` that the decoded JWT ``grant`` does not give (``*`` gives all).

    An opaque (non-JWT) grant cannot be inspected: returns ``[]``.
    """
    if grant.get("format") != "jwt":
        return []
    parsed = _split_scope(scope)
    if not parsed:
        return []
    rtype, name, wanted = parsed
    have: set[str] = set()
    for item in grant.get("access") or []:
        if item.get("type") == rtype and item.get("name") == name:
            have.update(item.get("actions") or [])
    if "*" in have:
        return []
    return [a for a in wanted if a not in have]


def empty_grant_error(scope: str) -> AuthError:
    """The error for Harbor's 200-with-empty-grant answer to wrong credentials."""
    return AuthError(
        f"credentials accepted by the token service but no actions granted for {scope} "
        "— wrong username/password?",
        code="auth.empty-grant",
        hint="check the username and password; Harbor answers wrong credentials with an empty grant",
    )


def redact_token_body(body: bytes) -> tuple[bytes, list[str]]:
    """Remove token fields from a token answer before it is saved.

    Returns the bytes to store and the names removed (``["body"]`` when the answer was
    not a JSON object and nothing of it is kept).
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return b"", ["body"]
    if not isinstance(doc, dict):
        return b"", ["body"]
    removed = [k for k in doc if k.lower() in SECRET_TOKEN_FIELDS]
    for k in removed:
        del doc[k]
    return json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8") + b"\n", removed


def redact_headers(headers: Iterable[tuple[str, str]]) -> tuple[list[list[str]], list[str]]:
    """Headers as ``[name, value]`` pairs with credential-bearing values replaced.

    Returns the pairs and the names redacted (spec §5.10 rule 7).
    """
    out, redacted = [], []
    for name, value in headers:
        if name.lower() in _SECRET_HEADERS:
            out.append([name, "<redacted>"])
            redacted.append(name)
        else:
            out.append([name, value])
    return out, redacted
