"""Registry credentials, the pure parts: parse what users already keep, decide which entry applies.

Covers the formats read by skopeo/podman (containers-auth.json) and the docker CLI
(``config.json``): ``auths`` entries with a base64 ``auth`` (``user:pass``) or an
``identitytoken`` (an OAuth2 refresh token, spec §5.6), ``credsStore`` and ``credHelpers``
(names of ``docker-credential-<name>`` programs), plus the answer such a helper prints.

No I/O, no environment, no clock: the caller reads files and runs helpers
(:mod:`mfkit.credstore`) and hands the bytes here.  Secrets live in :class:`Credentials`
fields excluded from ``repr`` and are never part of an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from .reference import DOCKER_HUB, DOCKER_HUB_API

__all__ = [
    "Credentials",
    "AuthFile",
    "CredentialsFormatError",
    "parse_creds_flag",
    "decode_auth_field",
    "parse_auth_file",
    "parse_helper_output",
    "normalize_key",
    "candidate_keys",
    "match_entry",
    "DOCKER_HUB_KEY",
    "TOKEN_USERNAME",
]

DOCKER_HUB_KEY = "https://index.docker.io/v1/"  # how `docker login` files Docker Hub (spec §5.8)
TOKEN_USERNAME = "<token>"  # credential helpers: this user name means "Secret is an identity token"
_HUB_HOSTS = {DOCKER_HUB, "index.docker.io", DOCKER_HUB_API}


class CredentialsFormatError(ValueError):
    """A credentials file or helper answer that cannot be used (message never holds a secret)."""


@dataclass(frozen=True)
class Credentials:
    """What to authenticate with, and where it came from.

    Attributes:
        username: the user name (``<token>`` style helpers give None with an identity token).
        password: the password, or None.
        identity_token: an OAuth2 refresh token (``identitytoken``), or None.
        source: for people, e.g. ``~/.docker/config.json (auths)``; never a secret.
    """

    username: str | None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    source: str = ""

    @property
    def usable(self) -> bool:
        """True when there is something to send."""
        return bool(self.identity_token) or (self.username is not None and bool(self.password))


@dataclass(frozen=True)
class AuthFile:
    """One parsed ``auth.json`` / ``config.json``.

    Attributes:
        auths: key as written -> entry dict (``auth``, ``identitytoken``, ``username``...).
        creds_store: the ``credsStore`` helper name, or None.
        cred_helpers: registry key -> helper name.
    """

    auths: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    creds_store: str | None = None
    cred_helpers: dict[str, str] = field(default_factory=dict)


def parse_creds_flag(text: str) -> tuple[str, str | None]:
    """``--creds USER[:PASS]`` -> (user, password or None).

    A password on the command line is refused (it would sit in the shell history and in
    ``ps`` output); the caller reads it from stdin instead.

    Raises:
        UsageError: empty user, or a password was given.
    """
    user, sep, password = text.partition(":")
    if not user:
        raise UsageError("--creds needs a user name: --creds USER (password on stdin with --password-stdin)",
                         code="usage.credentials")
    if sep and password:
        raise UsageError("--creds USER:PASSWORD puts the password on the command line (shell history, ps); "
                         "refused: use --creds USER --password-stdin",
                         hint="pipe the password in, e.g. printf %s \"$PW\" | mfkit fetch --creds USER --password-stdin",
                         code="usage.credentials")
    return user, None


def decode_auth_field(value: str) -> tuple[str, str]:
    """Decode an ``auth`` member: base64 of ``user:password`` (split at the first colon).

    Raises:
        CredentialsFormatError: not base64, not UTF-8, or no colon.
    """
    text = value.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise CredentialsFormatError("the 'auth' value is not base64 of user:password") from None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        raise CredentialsFormatError("the 'auth' value does not decode to user:password")
    return user, password.rstrip("\x00")


def _json_object(data: bytes, not_json: str, not_object: str) -> dict:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise CredentialsFormatError(not_json) from None
    if not isinstance(doc, dict):
        raise CredentialsFormatError(not_object)
    return doc


def parse_auth_file(data: bytes) -> AuthFile:
    """Parse a containers ``auth.json`` or a docker ``config.json``.

    Unknown members are ignored (docker stores ``proxies``, ``psFormat``... in the same
    file).  An empty file counts as no credentials, like docker and podman.

    Raises:
        CredentialsFormatError: not JSON, or a member of the wrong type.
    """
    if not data.strip():
        return AuthFile()
    doc = _json_object(data, "not valid JSON", "not a JSON object")
    auths = doc.get("auths")
    auths = {} if auths is None else auths
    if not isinstance(auths, dict):
        raise CredentialsFormatError("'auths' is not an object")
    store = doc.get("credsStore")
    if store is not None and not isinstance(store, str):
        raise CredentialsFormatError("'credsStore' is not a string")
    helpers = doc.get("credHelpers") or {}
    if not isinstance(helpers, dict) or not all(isinstance(v, str) for v in helpers.values()):
        raise CredentialsFormatError("'credHelpers' is not an object of strings")
    entries = {str(k): v for k, v in auths.items() if isinstance(v, dict)}
    return AuthFile(entries, store or None, {str(k): v for k, v in helpers.items() if v})


def entry_credentials(entry: dict[str, Any], source: str) -> Credentials | None:
    """Credentials of one ``auths`` entry, or None when it holds none (docker keeps empty ones).

    Raises:
        CredentialsFormatError: the ``auth`` member cannot be decoded.
    """
    ident = entry.get("identitytoken")
    user: str | None = None
    password: str | None = None
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        user, password = decode_auth_field(auth)
    elif isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        user, password = entry["username"], entry["password"]  # older docker files
    if isinstance(ident, str) and ident:
        return Credentials(user, None, ident, source)
    if user is not None and password:
        return Credentials(user, password, None, source)
    return None


def parse_helper_output(data: bytes, source: str) -> Credentials:
    """Parse ``docker-credential-NAME get`` output: ``{"ServerURL", "Username", "Secret"}``.

    A ``Username`` of ``<token>`` means the secret is an identity token (docker convention).

    Raises:
        CredentialsFormatError: not JSON, or no Secret.
    """
    doc = _json_object(data, "the helper answered something that is not JSON",
                       "the helper answer is not a JSON object")
    user, secret = doc.get("Username"), doc.get("Secret")
    if not isinstance(secret, str) or not secret:
        raise CredentialsFormatError("the helper answer has no Secret")
    if user == TOKEN_USERNAME:
        return Credentials(None, None, secret, source)
    if not isinstance(user, str) or not user:
        raise CredentialsFormatError("the helper answer has no Username")
    return Credentials(user, secret, None, source)


def normalize_key(key: str) -> str:
    """The ``host[:port]`` a file key stands for, like docker's ``ConvertToHostname``.

    ``https://index.docker.io/v1/`` -> ``index.docker.io``; ``http://h:5000`` -> ``h:5000``;
    ``h:5000/team/app`` (a podman per-repository key) -> ``h:5000``.  Lower-cased.
    """
    text = key.strip()
    for prefix in ("https://", "http://"):
        if text.lower().startswith(prefix):
            text = text[len(prefix):]
            break
    return text.split("/", 1)[0].lower()


def _hub(domain: str) -> bool:
    return domain.lower() in _HUB_HOSTS


def candidate_keys(domain: str, repository: str | None = None) -> list[str]:
    """Keys to look up, most specific first (podman then docker rules).

    ``domain`` is the reference domain (``docker.io``, ``host:5000``); ``repository`` enables
    podman's per-repository keys (``host/ns/app``, then ``host/ns``).
    """
    keys: list[str] = []
    if repository:
        parts = repository.split("/")
        keys += [f"{domain}/{'/'.join(parts[:i])}" for i in range(len(parts), 0, -1)]
    keys += [domain, f"https://{domain}", f"http://{domain}"]
    if _hub(domain):
        keys += [DOCKER_HUB_KEY, "index.docker.io", "https://index.docker.io", DOCKER_HUB_API]
    out: list[str] = []
    for k in keys:
        if k not in out:
            out.append(k)
    return out


def match_entry(keys: dict[str, Any] | list[str], domain: str, repository: str | None = None) -> str | None:
    """The key of ``keys`` that applies to ``domain``: exact candidates first, then any key
    whose host normalizes to the same host (Docker Hub aliases count as one host)."""
    present = list(keys)
    for cand in candidate_keys(domain, repository):
        if cand in present:
            return cand
    want = domain.lower()
    for k in present:
        host = normalize_key(k)
        if host == want or (_hub(host) and _hub(want)):
            if "://" not in k and "/" in k and not _hub(host):
                continue  # a podman per-repository key for another repository
            return k
    return None
