"""The registry client: the only module of mfkit that touches the network (httpx).

:class:`Registry` speaks the distribution API to one registry host: ping, bearer/basic
challenges, token service requests, manifests, blobs and tag lists. Every answer comes
back as an :class:`Exchange` (exact body, all headers, request facts, decoded grant), ready
to be written as a capture.

Credential rules (spec §5.10):

* credentials go to the realm named by the registry's challenge when that realm is on the
  registry's own host (or a known pair such as Docker Hub's ``auth.docker.io``), and as Basic
  only to the registry host itself;
* manifest, tag and token requests never follow redirects; blob redirects are followed by
  hand and ``Authorization`` is dropped for any other origin (CVE-2020-15157);
* plain HTTP only with ``plain_http`` or for loopback hosts; TLS verification is on unless
  ``insecure``;
* every body is streamed under a size cap; tokens and passwords are never logged or returned.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.cookiejar
import ipaddress
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import httpx

from .core.auth import (
    Challenge,
    decode_grant,
    empty_grant_error,
    missing_actions,
    parse_token_response,
    parse_www_authenticate,
    redact_headers,
    redact_token_body,
)
from .core.reference import DOCKER_HUB_API, is_loopback, repository_scope, split_host
from .errors import AuthError, FetchError, PolicyError, RegistryError

__all__ = ["Registry", "Exchange", "MANIFEST_LIMIT", "SMALL_LIMIT", "BLOB_LIMIT", "USER_AGENT", "now_rfc3339"]

MANIFEST_LIMIT = 4 << 20  # spec §6.6
SMALL_LIMIT = 1 << 20  # token and error bodies (spec §6.6)
BLOB_LIMIT = 16 << 20  # image configs
TOKEN_TIMEOUT = 15.0  # spec §5.10 rule 6
MAX_REDIRECTS = 5
MAX_PAGES = 10_000
USER_AGENT = "mfkit/0.1"
# realm hosts trusted with the credentials of a registry on another host (spec §5.10 rule 2)
_REALM_ALLOW = {DOCKER_HUB_API: {"auth.docker.io"}, "index.docker.io": {"auth.docker.io"}}

_HINTS = {
    "UNAUTHORIZED": "the registry wants credentials: add -u USER --password-stdin",
    "DENIED": "authenticated, but this account may not pull here",
    "MANIFEST_UNKNOWN": "no such tag or digest here, or its media type is not in --accept",
    "NAME_UNKNOWN": "no such repository on this registry",
    "BLOB_UNKNOWN": "the blob is not in this repository",
    "NAME_INVALID": "the repository name is not valid for this registry",
    "TOOMANYREQUESTS": "rate limited: wait (see Retry-After) and try again",
    "UNSUPPORTED": "the registry does not support this operation",
}


def now_rfc3339() -> str:
    """The current UTC time, RFC 3339 with milliseconds."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Exchange:
    """One request and its answer, as evidence.

    ``headers`` are all response headers in order (credential-bearing ones redacted);
    ``grant`` is the decoded grant of the token used (never the token); ``redacted``
    lists what was removed before saving.
    """

    kind: str
    method: str
    url: str
    accept: str | None
    status: int
    headers: list[list[str]]
    body: bytes
    time: str
    grant: dict[str, Any] | None = None
    redacted: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """Last value of header ``name`` (case-insensitive)."""
        low = name.lower()
        found = None
        for k, v in self.headers:
            if k.lower() == low:
                found = v
        return found

    def meta(self) -> dict[str, Any]:
        """Sidecar fields for :func:`mfkit.capture.write_capture`."""
        out: dict[str, Any] = {
            "request": {"method": self.method, "url": self.url, "accept": self.accept},
            "time": self.time, "status": self.status, "headers": self.headers,
            "kind": self.kind, "grant": self.grant,
        }
        if self.redacted:
            out["redacted"] = self.redacted
        out.update(self.extra)
        return out


@dataclass
class _Token:
    value: str = field(repr=False)
    expires_at: float
    grant: dict[str, Any]


def _no_cookies() -> http.cookiejar.CookieJar:
    # session cookies (Harbor's beegosessionID) are neither kept nor replayed
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host.lower(), url.port


def _parse_error_body(body: bytes) -> list[dict[str, Any]]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    errors = doc.get("errors") if isinstance(doc, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _next_link(value: str | None) -> str | None:
    # RFC 8288: <url>; rel="next" (several links may be comma-separated)
    if not value:
        return None
    for part in value.split(","):
        part = part.strip()
        if not part.startswith("<") or ">" not in part:
            continue
        target, _, params = part[1:].partition(">")
        for p in params.split(";"):
            key, _, val = p.strip().partition("=")
            if key.lower() == "rel" and "next" in val.strip('"').lower().split():
                return target
    return None


def _ip_policy(host: str) -> str | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.is_link_local or ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return "link-local/unspecified"
    if ip.is_loopback or ip.is_private:
        return "private"
    return None


class Registry:
    """A client for one registry host.

    Args:
        host: ``host[:port]`` (API host: ``registry-1.docker.io`` for Docker Hub).
        username, password: optional credentials (kept in memory only).
        plain_http: use http. Loopback hosts fall back to http without it.
        insecure: do not verify TLS certificates.
        timeout: seconds per request (token requests: at most 15).
        max_manifest_size: cap for manifest bodies.
        on_token: called with the redacted :class:`Exchange` of each token answer.
        transport: optional httpx transport (tests).
    """

    def __init__(self, host: str, *, username: str | None = None, password: str | None = None,
                 plain_http: bool = False, insecure: bool = False, timeout: float = 30.0,
                 max_manifest_size: int = MANIFEST_LIMIT, on_token: Callable[[Exchange], None] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        if (username is None) != (password is None):
            raise AuthError("a username needs a password and a password needs a username", code="auth.incomplete")
        self.host = host
        self.username = username
        self._password = password
        self.plain_http = plain_http
        self.insecure = insecure
        self.timeout = timeout
        self.max_manifest_size = max_manifest_size
        self.on_token = on_token
        self.scheme: str | None = "http" if plain_http else None
        self.challenge: Challenge | None = None
        self._pinged = False
        self._lock = threading.Lock()
        self._scope_locks: dict[tuple[str, ...], threading.Lock] = {}
        self._tokens: dict[tuple[str, str, tuple[str, ...]], _Token] = {}
        self._client = httpx.Client(
            verify=not insecure, timeout=timeout, follow_redirects=False, cookies=_no_cookies(),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8), transport=transport)

    # --- lifecycle ---

    def close(self) -> None:
        """Close connections and forget tokens."""
        self._tokens.clear()
        self._client.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base(self) -> str:
        """``scheme://host`` once the scheme is known."""
        return f"{self.scheme or 'https'}://{self.host}"

    # --- low level ---

    def _send(self, method: str, url: str, headers: dict[str, str], limit: int, *,
              timeout: float | None = None) -> tuple[httpx.Response, bytes, str]:
        """One request, body streamed under ``limit``; network failures become FetchError."""
        stamp = now_rfc3339()
        try:
            with self._client.stream(method, url, headers=headers, timeout=timeout or self.timeout) as resp:
                length = resp.headers.get("content-length", "")
                if length.isdigit() and int(length) > limit:
                    raise FetchError(f"{url}: answer of {length} bytes is over the limit of {limit}",
                                     code="fetch.too-large", url=url, status=resp.status_code,
                                     hint="raise it with --max-manifest-size" if limit == self.max_manifest_size else None)
                buf = bytearray()
                for chunk in resp.iter_bytes():
                    buf += chunk
                    if len(buf) > limit:
                        raise FetchError(f"{url}: answer is over the limit of {limit} bytes (stopped reading)",
                                         code="fetch.too-large", url=url, status=resp.status_code)
                return resp, bytes(buf), stamp
        except httpx.TimeoutException as exc:
            raise FetchError(f"{self._where(url)}: timed out ({type(exc).__name__})", code="fetch.timeout",
                             url=url, hint="raise --timeout, or check the host and port") from None
        except httpx.ConnectError as exc:
            text = str(exc)
            if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower():
                raise FetchError(f"{self._where(url)}: TLS certificate not trusted ({text})", code="fetch.tls",
                                 url=url, hint="use --insecure only if you accept an unverified connection") from None
            raise FetchError(f"cannot connect to {self._where(url)}: {text or 'connection failed'}",
                             code="fetch.connect", url=url,
                             hint="check the host, the port and --plain-http") from None
        except httpx.TransportError as exc:
            raise FetchError(f"{self._where(url)}: {type(exc).__name__}: {exc}", code="fetch.transport",
                             url=url) from None

    @staticmethod
    def _where(url: str) -> str:
        u = httpx.URL(url)
        return f"{u.scheme}://{u.netloc.decode('ascii', 'replace')}"

    def _exchange(self, kind: str, method: str, url: str, accept: str | None, resp: httpx.Response,
                  body: bytes, stamp: str, grant: dict[str, Any] | None) -> Exchange:
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.raw]
        headers, redacted = redact_headers(raw)
        return Exchange(kind, method, url, accept, resp.status_code, headers, body, stamp, grant,
                        [f"header:{n}" for n in redacted])

    def _error(self, what: str, url: str, resp: httpx.Response, body: bytes) -> FetchError:
        errors = _parse_error_body(body)
        status = resp.status_code
        if errors:
            first = errors[0]
            code = str(first.get("code", "UNKNOWN"))
            msg = str(first.get("message", "")).strip()
            hint = _HINTS.get(code)
            if code == "TOOMANYREQUESTS" and resp.headers.get("retry-after"):
                hint = f"rate limited: retry after {resp.headers['retry-after']} s"
            return RegistryError(f"{what}: {code}{': ' + msg if msg else ''} (HTTP {status})", errors=errors,
                                 code=f"registry.{code.lower().replace('_', '-')}", hint=hint, url=url, status=status)
        snippet = body[:120].decode("utf-8", "replace").strip()
        return RegistryError(f"{what}: HTTP {status}{' ' + snippet if snippet else ''}", code=f"registry.http-{status}",
                             url=url, status=status)

    # --- ping and challenge (spec §5.1) ---

    def ping(self) -> None:
        """``GET /v2/``: learn the scheme and the challenge. Idempotent."""
        with self._lock:
            if self._pinged:
                return
            schemes = [self.scheme] if self.scheme else (["https", "http"] if is_loopback(self.host) else ["https"])
            last: FetchError | None = None
            for scheme in schemes:
                url = f"{scheme}://{self.host}/v2/"
                try:
                    resp, body, _ = self._send("GET", url, {}, SMALL_LIMIT)
                except FetchError as exc:
                    last = exc
                    if exc.code in ("fetch.connect", "fetch.transport", "fetch.tls") and scheme == "https" \
                            and len(schemes) > 1:
                        continue  # loopback: https refused, try http (spec §6.1)
                    raise
                self.scheme = scheme
                break
            else:
                assert last is not None
                raise last
            if resp.status_code == 401:
                self.challenge = self._pick(resp)
                if self.challenge is None:
                    raise AuthError(f"{self.base}/v2/ asks for authentication with no usable challenge",
                                    code="auth.no-challenge", url=url, status=401)
            elif resp.status_code == 404:
                raise FetchError(f"{self.base} is not a registry (GET /v2/ answered 404)", code="fetch.not-registry",
                                 url=url, status=404)
            elif resp.status_code >= 400:
                raise self._error(f"{self.base}/v2/", url, resp, body)
            self._pinged = True

    def _pick(self, resp: httpx.Response) -> Challenge | None:
        lines = resp.headers.get_list("www-authenticate")
        for ch in parse_www_authenticate(lines):
            if ch.scheme == "bearer" and ch.realm:
                self._check_realm(ch.realm)
                return ch
            if ch.scheme == "basic":
                return ch
        return None

    def _check_realm(self, realm: str) -> None:
        """Realm rules (spec §5.10 rules 2 and 4): the realm is chosen by the server."""
        try:
            url = httpx.URL(realm)
        except httpx.InvalidURL:
            raise PolicyError(f"token realm {realm!r} is not a URL", code="policy.realm") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise PolicyError(f"token realm {realm!r} is not an absolute http(s) URL", code="policy.realm")
        if url.scheme == "http" and self.scheme == "https":
            raise PolicyError(f"https registry names a plain-http token realm {realm!r}; refused",
                              code="policy.realm-downgrade")
        reg_host = split_host(self.host)[0].lower()
        realm_host = url.host.lower()
        kind = _ip_policy(realm_host)
        if kind == "link-local/unspecified":
            raise PolicyError(f"token realm {realm!r} points at a {kind} address; refused (SSRF guard)",
                              code="policy.realm-ssrf")
        if kind == "private" and realm_host != reg_host and _ip_policy(reg_host) != "private" \
                and not is_loopback(self.host):
            raise PolicyError(f"token realm {realm!r} points at a private address; refused (SSRF guard)",
                              code="policy.realm-ssrf")
        if self.username is not None and realm_host != reg_host \
                and realm_host not in _REALM_ALLOW.get(reg_host, set()) \
                and realm_host.split(".")[-2:] != reg_host.split(".")[-2:]:
            raise PolicyError(
                f"registry {self.host} sends credentials to token realm host {realm_host}; refused",
                code="policy.realm-host",
                hint="credentials are only sent to a realm on the registry's own domain")

    # --- tokens (spec §5.3, §5.4) ---

    def _basic(self) -> str:
        raw = f"{self.username}:{self._password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def _token(self, scopes: tuple[str, ...], *, refresh: bool = False) -> _Token:
        ch = self.challenge
        assert ch is not None and ch.realm
        key = (ch.realm, ch.service or "", tuple(sorted(scopes)))
        with self._lock:
            lock = self._scope_locks.setdefault(key[2], threading.Lock())
        with lock:
            cached = self._tokens.get(key)
            if cached and not refresh and cached.expires_at - 10 > time.time():
                return cached
            token = self._request_token(ch, list(key[2]))
            self._tokens[key] = token
            return token

    def _request_token(self, ch: Challenge, scopes: list[str]) -> _Token:
        url = httpx.URL(ch.realm)
        params = list(url.params.multi_items())  # keep a query already in the realm (spec §5.3)
        if self.username is not None:
            params.append(("account", self.username))
        if ch.service:
            params.append(("service", ch.service))
        params += [("scope", s) for s in scopes]
        full = str(url.copy_with(params=params))
        headers = {"Authorization": self._basic()} if self.username is not None else {}
        resp, body, stamp = self._send("GET", full, headers, SMALL_LIMIT, timeout=min(self.timeout, TOKEN_TIMEOUT))
        what = f"token service {self._where(full)}"
        if resp.status_code in (401, 403):
            if self.username is not None:
                raise AuthError(f"{what} refused the credentials of user {self.username!r} (HTTP {resp.status_code})",
                                code="auth.refused", url=full, status=resp.status_code,
                                hint="check the username and the password given on stdin")
            raise AuthError(f"{what} refused an anonymous token (HTTP {resp.status_code})", code="auth.refused",
                            url=full, status=resp.status_code, hint="give credentials: -u USER --password-stdin")
        if 300 <= resp.status_code < 400:
            raise PolicyError(f"{what} redirected the token request; not followed (credentials stay put)",
                              code="policy.redirect", url=full, status=resp.status_code)
        if resp.status_code != 200:
            raise AuthError(f"{what} answered HTTP {resp.status_code}", code="auth.token-status", url=full,
                            status=resp.status_code)
        parsed = parse_token_response(body, now=time.time())
        grant = decode_grant(parsed.token, scopes=scopes)
        grant["expires_in"] = parsed.expires_in
        if parsed.notes:
            grant["notes"] = list(parsed.notes)
        if self.on_token is not None:
            saved, removed = redact_token_body(body)
            ex = self._exchange("token", "GET", full, None, resp, saved, stamp, grant)
            ex.redacted = [*removed, *ex.redacted]
            self.on_token(ex)
        if self.username is not None:
            for s in scopes:
                wanted = s.rsplit(":", 1)[-1].split(",")
                if sorted(missing_actions(grant, s)) == sorted(a for a in wanted if a):
                    raise empty_grant_error(s)
        return _Token(parsed.token, parsed.expires_at, grant)

    def _auth(self, scopes: tuple[str, ...], refresh: bool = False) -> tuple[dict[str, str], dict[str, Any] | None]:
        ch = self.challenge
        if ch is None:
            return {}, None
        if ch.scheme == "basic":
            if self.username is None:
                return {}, None
            if self.scheme != "https" and not (self.plain_http or is_loopback(self.host)):
                raise PolicyError("refusing to send Basic credentials over plain http", code="policy.plain-http")
            return {"Authorization": self._basic()}, {"format": "basic", "subject": self.username}
        tok = self._token(scopes, refresh=refresh)
        return {"Authorization": f"Bearer {tok.value}"}, tok.grant

    # --- requests ---

    def request(self, kind: str, path: str, *, scopes: tuple[str, ...], accept: str | None = None,
                limit: int = SMALL_LIMIT, what: str = "") -> Exchange:
        """GET ``path`` on the registry with auth, no redirects; non-2xx raises."""
        self.ping()
        url = path if path.startswith(("http://", "https://")) else self.base + path
        headers = {"Accept": accept} if accept else {}
        refreshed = False
        retried_429 = False
        while True:
            auth, grant = self._auth(scopes, refresh=refreshed)
            resp, body, stamp = self._send("GET", url, {**headers, **auth}, limit)
            if resp.status_code == 401 and not refreshed:
                new = self._pick(resp)
                if new is not None and new.scheme == "bearer":
                    if self.challenge is None or self.challenge.scheme != "bearer":
                        self.challenge = new
                    # invalid_token: expired or revoked; insufficient_scope: ask for the named scope
                    if new.error == "insufficient_scope" and new.scopes:
                        scopes = tuple(sorted(set(scopes) | set(new.scopes)))
                    refreshed = True
                    continue
                if new is not None and self.challenge is None:
                    self.challenge = new
                    refreshed = True
                    continue
            if resp.status_code == 429 and not retried_429:
                wait = resp.headers.get("retry-after", "")
                if wait.isdigit() and int(wait) <= 5:
                    retried_429 = True
                    time.sleep(int(wait))
                    continue
            break
        if 300 <= resp.status_code < 400:
            raise PolicyError(f"{what or url}: registry redirected to {resp.headers.get('location', '?')}; "
                              "not followed for manifests and tag lists", code="policy.redirect", url=url,
                              status=resp.status_code)
        if resp.status_code == 401 and self.username is None and grant is not None:
            raise AuthError(f"{what or url}: anonymous access not granted (HTTP 401)", code="auth.anonymous",
                            url=url, status=401, hint="give credentials: -u USER --password-stdin")
        if resp.status_code >= 400:
            raise self._error(what or url, url, resp, body)
        return self._exchange(kind, "GET", url, accept, resp, body, stamp, grant)

    def get_manifest(self, repository: str, ref: str, accept: str) -> Exchange:
        """``GET /v2/<name>/manifests/<ref>`` with ``accept`` (size cap: max_manifest_size)."""
        return self.request("manifests", f"/v2/{repository}/manifests/{ref}",
                            scopes=(repository_scope(repository),), accept=accept,
                            limit=self.max_manifest_size, what=f"{self.host}/{repository}:{ref}")

    def list_tags(self, repository: str) -> Iterator[Exchange]:
        """``GET /v2/<name>/tags/list``, following ``Link: rel="next"`` pages (spec §6.3)."""
        url = f"/v2/{repository}/tags/list"
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            ex = self.request("tags", url, scopes=(repository_scope(repository),), accept="application/json",
                              what=f"{self.host}/{repository} tags")
            yield ex
            link = _next_link(ex.header("link"))
            if not link:
                return
            nxt = httpx.URL(ex.url).join(link)
            if _origin(nxt) != _origin(httpx.URL(self.base)):
                raise PolicyError(f"tag list page link goes to another origin ({nxt.host}); not followed",
                                  code="policy.link")
            url = str(nxt)
            if url in seen:
                raise FetchError(f"{self.host}/{repository}: tag list pages loop at {url}", code="fetch.pagination")
            seen.add(url)
        raise FetchError(f"{self.host}/{repository}: more than {MAX_PAGES} tag list pages", code="fetch.pagination")

    def get_blob(self, repository: str, digest: str, *, limit: int = BLOB_LIMIT) -> Exchange:
        """``GET /v2/<name>/blobs/<digest>``; redirects followed by hand (CVE-2020-15157).

        ``Authorization`` is sent only to the registry's own origin; a redirect to another
        origin is fetched without credentials, and an https -> http downgrade is refused.
        """
        self.ping()
        scopes = (repository_scope(repository),)
        home = _origin(httpx.URL(self.base))
        url = first = f"{self.base}/v2/{repository}/blobs/{digest}"
        hops: list[str] = []
        what = f"{self.host}/{repository}@{digest}"
        refreshed = False
        grant: dict[str, Any] | None = None
        for _ in range(MAX_REDIRECTS + 1):
            target = httpx.URL(url)
            same = _origin(target) == home
            auth, g = self._auth(scopes, refresh=refreshed) if same else ({}, None)
            grant = g if same else grant
            resp, body, stamp = self._send("GET", url, auth, limit)
            if resp.status_code == 401 and same and not refreshed and self.challenge is not None:
                refreshed = True
                continue
            if resp.status_code in (301, 302, 303, 307, 308):
                loc = resp.headers.get("location")
                if not loc:
                    raise FetchError(f"{what}: redirect without Location", code="fetch.redirect", url=url)
                nxt = target.join(loc)
                if target.scheme == "https" and nxt.scheme != "https":
                    raise PolicyError(f"{what}: redirect from https to {nxt.scheme} refused", code="policy.downgrade")
                url = str(nxt)
                # storage URLs carry signatures in their query: keep only scheme, host and path
                hops.append(str(nxt.copy_with(query=None, fragment=None)))
                continue
            if resp.status_code >= 400:
                raise self._error(what, url, resp, body)
            ex = self._exchange("blobs", "GET", first, None, resp, body, stamp, grant)
            if hops:
                ex.extra["redirects"] = hops
                ex.redacted.append("redirect-query")
            return ex
        raise FetchError(f"{what}: more than {MAX_REDIRECTS} redirects", code="fetch.redirect", url=url)
