"""The registry client: the only module of mfkit that touches the network (httpx).

:class:`Registry` speaks the distribution API to one registry host: ping, bearer/basic
challenges, token service requests (GET, and the OAuth2 POST for identity tokens), manifests
(GET and HEAD), blobs, tag lists and the catalog. Every answer comes back as an
:class:`Exchange` (exact body, all headers, request facts, decoded grant), ready to be
written as a capture.

Credential rules (spec §5.10):

* credentials go to the realm named by the registry's challenge when that realm is on the
  registry's own host (or a known pair such as Docker Hub's ``auth.docker.io``), and as Basic
  only to the registry host itself;
* manifest, tag and token requests never follow redirects; blob redirects are followed by
  hand and ``Authorization`` is dropped for any other origin (CVE-2020-15157);
* a realm or a blob redirect target on a link-local, metadata or unspecified address is
  refused, one on loopback only when the registry itself is on loopback, one on a private
  address only for a private or loopback registry (SSRF guard, spec §5.10 rule 2). Numeric
  IPv4 hosts are read the way the C resolver reads them (``2852039166``, ``0xa9fea9fe``,
  ``0251.0376.0251.0376``, ``127.1``, a trailing dot) before the check; host names are not
  resolved, so a DNS name that points at a private address is not caught;
* plain HTTP only with ``plain_http`` or for loopback hosts; TLS verification is on unless
  ``insecure``; ``ca_file`` adds private CAs;
* every body is streamed under a size cap; tokens and passwords are never logged or returned;
* every request attempt has a total time budget (``total_timeout``), enforced on every socket
  read and write, so a server trickling one byte or one header line at a time cannot hold a
  worker longer than that; :meth:`Registry.abort` shuts every open socket down (Ctrl-C);
* registry-controlled text (error codes and messages, header values, URLs it names) is shown
  through :func:`shown`: control and bidi characters escaped, at most ``FIELD_CAP`` characters.

Faults: 429 (``Retry-After`` honoured, capped), 502/503/504, connection resets, timeouts,
truncated bodies and bodies failing a caller-supplied check (digest) are retried with
exponential backoff and full jitter, a bounded number of times within a bounded total wait.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import http.cookiejar
import ipaddress
import json
import random
import re
import socket
import ssl
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import httpcore
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
from .core.printable import printable
from .core.reference import DOCKER_HUB_API, is_loopback, repository_scope, split_host
from .limits import LIST_FETCH_LIMIT, MANIFEST_FETCH_LIMIT
from .limits import MAX_PAGES as MAX_PAGES_DEFAULT
from .errors import AuthError, FetchError, PolicyError, RegistryError, UsageError

__all__ = [
    "Registry",
    "Exchange",
    "RetryPolicy",
    "parse_link_header",
    "parse_retry_after",
    "realm_address_problem",
    "address_problem",
    "normalize_host",
    "shown",
    "FIELD_CAP",
    "LIST_LIMIT",
    "MANIFEST_LIMIT",
    "SMALL_LIMIT",
    "BLOB_LIMIT",
    "MAX_PAGES",
    "USER_AGENT",
    "now_rfc3339",
]

MANIFEST_LIMIT = MANIFEST_FETCH_LIMIT  # spec §6.6
SMALL_LIMIT = 1 << 20  # token and error bodies (spec §6.6)
BLOB_LIMIT = 16 << 20  # image configs
LIST_LIMIT = LIST_FETCH_LIMIT  # one tag-list or catalog page (--max-list-size)
FIELD_CAP = 300  # characters of one registry-controlled text field shown to people
TOTAL_FACTOR = 4  # default total budget of one attempt: connect timeout + 4 x read timeout
TOKEN_TIMEOUT = 15.0  # spec §5.10 rule 6
MAX_REDIRECTS = 5
MAX_PAGES = MAX_PAGES_DEFAULT  # spec §6.3: cap total pages
USER_AGENT = "mfkit/0.1"
CLIENT_ID = "mfkit"  # OAuth2 client_id (spec §5.6)
RETRY_STATUS = {429, 502, 503, 504}
RETRY_CODES = {"fetch.transport", "fetch.timeout", "fetch.truncated", "fetch.digest-mismatch"}
# realm hosts trusted with the credentials of a registry on another host (spec §5.10 rule 2)
_REALM_ALLOW = {DOCKER_HUB_API: {"auth.docker.io"}, "index.docker.io": {"auth.docker.io"}}
# cloud metadata endpoints that are not link-local literals (spec §5.10 rule 2: SSRF)
_METADATA_HOSTS = {"metadata.google.internal", "metadata", "metadata.goog", "fd00:ec2::254", "100.100.100.200",
                   "169.254.169.254", "instance-data", "instance-data.ec2.internal"}

_HINTS = {
    "UNAUTHORIZED": "the registry wants credentials: add -u USER --password-stdin, or log in with docker/podman",
    "DENIED": "authenticated, but this account may not pull here",
    "MANIFEST_UNKNOWN": "no such tag or digest here, or its media type is not in --accept",
    "NAME_UNKNOWN": "no such repository on this registry",
    "BLOB_UNKNOWN": "the blob is not in this repository",
    "NAME_INVALID": "the repository name is not valid for this registry",
    "TOOMANYREQUESTS": "rate limited: wait (see Retry-After) and try again, or raise --retries",
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

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

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
class RetryPolicy:
    """How faults are retried.

    Attributes:
        retries: extra attempts after the first (0 = no retry).
        base: first backoff ceiling, seconds; doubled per attempt ("full jitter": the wait
            is uniform in [0, ceiling]).
        max_delay: cap of one wait, ``Retry-After`` included.
        budget: cap of the total wait of one request.
    """

    retries: int = 4
    base: float = 0.5
    max_delay: float = 30.0
    budget: float = 120.0

    def backoff(self, attempt: int) -> float:
        """Full-jitter wait before retry ``attempt`` (0-based)."""
        return random.uniform(0, min(self.max_delay, self.base * (2 ** attempt)))


@dataclass
class _Token:
    value: str = field(repr=False)
    expires_at: float
    grant: dict[str, Any]


def _no_cookies() -> http.cookiejar.CookieJar:
    # session cookies (Harbor's beegosessionID) are neither kept nor replayed
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    return url.scheme, url.host.lower(), port


def _parse_error_body(body: bytes) -> list[dict[str, Any]]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    errors = doc.get("errors") if isinstance(doc, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def parse_link_header(values: str | list[str] | None) -> list[tuple[str, set[str]]]:
    """``Link`` values -> ``[(target, rels)]`` (RFC 8288).

    Several links per line and several lines are understood; commas and semicolons inside
    ``<...>`` or quotes do not split; ``rel`` may be quoted or bare and hold several
    space-separated relation types (compared lower-cased). The target is kept exactly as
    sent, so opaque query parameters are never re-encoded (spec §6.3).
    """
    lines = [values] if isinstance(values, str) else list(values or [])
    out: list[tuple[str, set[str]]] = []
    for line in lines:
        i, n = 0, len(line)
        while i < n:
            lt = line.find("<", i)
            if lt < 0:
                break
            gt = line.find(">", lt + 1)
            if gt < 0:
                break
            target = line[lt + 1:gt]
            j = gt + 1
            rels: set[str] = set()
            # parameters until the next comma outside quotes
            while j < n and line[j] != ",":
                if line[j] == ";":
                    j += 1
                    while j < n and line[j] in " \t":
                        j += 1
                    start = j
                    while j < n and line[j] not in "=;,":
                        j += 1
                    name = line[start:j].strip().lower()
                    value = ""
                    if j < n and line[j] == "=":
                        j += 1
                        while j < n and line[j] in " \t":
                            j += 1
                        if j < n and line[j] == '"':
                            end = line.find('"', j + 1)
                            end = n if end < 0 else end
                            value = line[j + 1:end]
                            j = end + 1
                        else:
                            start = j
                            while j < n and line[j] not in ";,":
                                j += 1
                            value = line[start:j].strip()
                    if name == "rel":
                        rels |= {r.lower() for r in value.split()}
                else:
                    j += 1
            out.append((target, rels))
            i = j + 1
    return out


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP-date (RFC 9110)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - now)


def shown(text: object, cap: int = FIELD_CAP) -> str:
    """Registry-controlled ``text`` made safe to show: control and bidi characters escaped
    (:func:`~mfkit.core.printable.printable`), cut after ``cap`` characters with a note of
    how much was left out."""
    s = printable(text)
    if len(s) <= cap:
        return s
    rest = len(s[cap:].encode("utf-8", "replace"))
    return f"{s[:cap]}\u2026 ({rest} bytes more)"


_NUMERIC_V4 = re.compile(r"[0-9a-fA-FxX.]+")


def normalize_host(host: str) -> str:
    """A URL host as the address checks see it: lower case, no brackets, one trailing dot
    dropped, and a numeric IPv4 host in any form the C resolver accepts (``2852039166``,
    ``0xa9fea9fe``, ``0251.0376.0251.0376``, ``127.1``, ``0``) written as a dotted quad,
    the way ``inet_aton`` reads it. Names are not resolved."""
    h = host.strip().lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h.endswith(".") and not h.endswith(".."):
        h = h[:-1]
    if h and _NUMERIC_V4.fullmatch(h):
        try:
            return socket.inet_ntoa(socket.inet_aton(h))
        except OSError:
            pass
    return h


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(normalize_host(host))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip


def address_problem(target_host: str, registry_host: str) -> str | None:
    """Why a host named by the registry (token realm, blob redirect) is refused, or None.

    Refused: link-local (169.254.0.0/16, fe80::/10), unspecified (0.0.0.0, ::), multicast,
    reserved and known cloud-metadata addresses, always; loopback unless the registry is on
    loopback; private ranges unless the registry is on loopback or a private address.
    Numeric IPv4 forms are normalised first (:func:`normalize_host`). Host names are not
    resolved (DNS answers can change between check and use): a name that points at a
    private address is not caught.
    """
    host = normalize_host(target_host)
    reg = normalize_host(split_host(registry_host)[0])
    if host in _METADATA_HOSTS:
        return "a cloud metadata address"
    ip = _ip(host)
    if ip is None:
        return "loopback" if (host == "localhost" or host.endswith(".localhost")) and not is_loopback(reg) else None
    if str(ip) in _METADATA_HOSTS:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast or ip.is_reserved:
        return "a multicast/reserved address"
    reg_ip = _ip(reg)
    reg_loop = is_loopback(reg) or (reg_ip is not None and reg_ip.is_loopback)
    if ip.is_loopback:
        return None if reg_loop else "loopback"
    if ip.is_private:
        if host == reg or reg_loop or (reg_ip is not None and reg_ip.is_private):
            return None
        return "a private address"
    return None


def realm_address_problem(realm_host: str, registry_host: str) -> str | None:
    """Why a token realm host is refused for a registry host, or None (spec §5.10 rule 2);
    see :func:`address_problem`."""
    return address_problem(realm_host, registry_host)


class _Stream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the attempt's deadline."""

    def __init__(self, net: "_Net", inner: httpcore.NetworkStream) -> None:
        self._net = net
        self._inner = inner
        self.dropped = False
        net.track(self)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._net.using(self)
        if self.dropped:
            raise httpcore.ReadError("connection dropped")
        return self._inner.read(max_bytes, self._net.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._net.using(self)
        if self.dropped:
            raise httpcore.WriteError("connection dropped")
        self._inner.write(buffer, self._net.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._net.left(timeout, httpcore.ConnectTimeout))
        return _Stream(self._net, inner)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self.dropped:
            return True  # the pool then treats this idle connection as closed and never reuses it
        return self._inner.get_extra_info(info)

    def drop(self) -> None:
        """Never use this connection again; wake a read blocked on it."""
        self.dropped = True
        sock = self._inner.get_extra_info("socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Net(httpcore.NetworkBackend):
    """httpcore's socket backend plus a per-thread deadline, dropping of a bad connection
    and :meth:`abort` (every socket shut down at once)."""

    def __init__(self) -> None:
        self._base = httpcore.SyncBackend()
        self._local = threading.local()
        self._live: "weakref.WeakSet[_Stream]" = weakref.WeakSet()
        self._lock = threading.Lock()
        self.aborted = False

    def begin(self, deadline: float | None) -> None:
        self._local.deadline = deadline
        self._local.stream = None

    def end(self) -> None:
        self._local.deadline = None

    def expired(self) -> bool:
        deadline = getattr(self._local, "deadline", None)
        return deadline is not None and time.monotonic() >= deadline

    def left(self, timeout: float | None, error: type[Exception]) -> float | None:
        if self.aborted:
            raise httpcore.ReadError("interrupted")
        deadline = getattr(self._local, "deadline", None)
        if deadline is None:
            return timeout
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise error("total time budget spent")
        return remaining if timeout is None else min(timeout, remaining)

    def track(self, stream: _Stream) -> None:
        with self._lock:
            self._live.add(stream)
        if self.aborted:
            stream.drop()

    def using(self, stream: _Stream) -> None:
        self._local.stream = stream

    def drop_current(self) -> None:
        """Drop the connection this thread used last (its bytes can no longer be trusted)."""
        stream = getattr(self._local, "stream", None)
        self._local.stream = None
        if stream is not None:
            stream.drop()

    def abort(self) -> None:
        self.aborted = True
        with self._lock:
            streams = list(self._live)
        for stream in streams:
            stream.drop()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        inner = self._base.connect_tcp(host, port, self.left(timeout, httpcore.ConnectTimeout), local_address,
                                       socket_options)
        return _Stream(self, inner)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:  # pragma: no cover
        return _Stream(self, self._base.connect_unix_socket(path, self.left(timeout, httpcore.ConnectTimeout),
                                                            socket_options))

    def sleep(self, seconds: float) -> None:  # pragma: no cover
        self._base.sleep(seconds)


class Registry:
    """A client for one registry host.

    Args:
        host: ``host[:port]`` (API host: ``registry-1.docker.io`` for Docker Hub).
        username, password: optional credentials (kept in memory only).
        identity_token: optional OAuth2 refresh token (docker's ``identitytoken``).
        plain_http: use http. Loopback hosts fall back to http without it.
        insecure: do not verify TLS certificates.
        ca_file: PEM file of extra CA certificates to trust.
        timeout: seconds per request (shortcut for both timeouts below).
        connect_timeout, read_timeout: seconds (token requests: at most 15).
        max_manifest_size: cap for manifest bodies.
        max_list_size: cap for one tag-list or catalog page.
        total_timeout: seconds one request attempt may take in all, however the bytes
            trickle in (default: connect timeout + 4 x read timeout).
        retry: the :class:`RetryPolicy`.
        jobs: connections kept per host.
        on_token: called with the redacted :class:`Exchange` of each token answer.
        on_retry: called with a one-line message before each retry.
        stop: when set, waits end early and no new request starts (Ctrl-C).
        transport: optional httpx transport (tests).
    """

    def __init__(self, host: str, *, username: str | None = None, password: str | None = None,
                 identity_token: str | None = None,
                 plain_http: bool = False, insecure: bool = False, ca_file: str | None = None,
                 timeout: float = 30.0, connect_timeout: float | None = None, read_timeout: float | None = None,
                 max_manifest_size: int = MANIFEST_LIMIT, max_list_size: int = LIST_LIMIT,
                 total_timeout: float | None = None, retry: RetryPolicy | None = None, jobs: int = 4,
                 on_token: Callable[[Exchange], None] | None = None,
                 on_retry: Callable[[str], None] | None = None, stop: threading.Event | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        if identity_token is None and (username is None) != (password is None):
            raise AuthError("a username needs a password and a password needs a username", code="auth.incomplete")
        self.host = host
        self.username = username
        self._password = password
        self._identity_token = identity_token
        self.plain_http = plain_http
        self.insecure = insecure
        self.connect_timeout = connect_timeout or timeout
        self.read_timeout = read_timeout or timeout
        self.max_manifest_size = max_manifest_size
        self.max_list_size = max_list_size
        self.total_timeout = total_timeout or (self.connect_timeout + TOTAL_FACTOR * self.read_timeout)
        self.retry = retry or RetryPolicy()
        self.on_token = on_token
        self.on_retry = on_retry
        self.stop = stop or threading.Event()
        self.scheme: str | None = "http" if plain_http else None
        self.challenge: Challenge | None = None
        self._pinged = False
        self._lock = threading.Lock()
        self._scope_locks: dict[tuple[str, ...], threading.Lock] = {}
        self._tokens: dict[tuple[str, str, tuple[str, ...]], _Token] = {}
        verify: bool | ssl.SSLContext = not insecure
        if ca_file and not insecure:
            verify = _ssl_context(ca_file)
        jobs = max(1, jobs)
        limits = httpx.Limits(max_connections=jobs * 2, max_keepalive_connections=jobs * 2)
        self._net = _Net()
        if transport is None:
            transport = httpx.HTTPTransport(verify=verify, limits=limits)
            pool = getattr(transport, "_pool", None)
            # the deadline, connection dropping and abort live in the socket backend
            if isinstance(pool, httpcore.ConnectionPool) and hasattr(pool, "_network_backend"):
                pool._network_backend = self._net
        self._client = httpx.Client(
            verify=verify, timeout=self._timeout(), follow_redirects=False, cookies=_no_cookies(),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            limits=limits, transport=transport)

    @property
    def has_credentials(self) -> bool:
        """True when a password or an identity token is configured."""
        return self._identity_token is not None or self.username is not None

    def _timeout(self, cap: float | None = None) -> httpx.Timeout:
        read = min(self.read_timeout, cap) if cap else self.read_timeout
        conn = min(self.connect_timeout, cap) if cap else self.connect_timeout
        return httpx.Timeout(connect=conn, read=read, write=read, pool=max(read, conn))

    # --- lifecycle ---

    def close(self) -> None:
        """Close connections and forget tokens."""
        self._tokens.clear()
        self._client.close()

    def abort(self) -> None:
        """Ctrl-C: stop waits, refuse new requests, and shut every open socket down so that
        reads blocked in other threads end now."""
        self.stop.set()
        self._net.abort()

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
              timeout: httpx.Timeout | None = None, data: dict[str, str] | None = None,
              limit_flag: str | None = None,
              ) -> tuple[httpx.Response, bytes, str]:
        """One request, body streamed under ``limit``; network failures become FetchError.

        The attempt ends by ``total_timeout`` whatever the server does (each socket read and
        write waits at most until then). After a failure the connection is dropped, never
        reused: bytes left in it would be read as the next answer.
        """
        if self.stop.is_set():
            raise FetchError(f"{self._where(url)}: interrupted", code="fetch.interrupted", url=url)
        stamp = now_rfc3339()
        hint = f"raise it with {limit_flag}" if limit_flag else None
        self._net.begin(time.monotonic() + self.total_timeout)
        try:
            with self._client.stream(method, url, headers=headers, timeout=timeout or self._timeout(),
                                     data=data) as resp:
                length = resp.headers.get("content-length", "")
                if length.isdigit() and int(length) > limit:
                    raise FetchError(f"{url}: answer of {length} bytes is over the limit of {limit}",
                                     code="fetch.too-large", url=url, status=resp.status_code, hint=hint)
                buf = bytearray()
                if method != "HEAD":
                    # spec §6.6: never hold more than the cap, whatever the server sends
                    for chunk in resp.iter_bytes():
                        buf += chunk
                        if len(buf) > limit:
                            raise FetchError(f"{url}: answer is over the limit of {limit} bytes (stopped reading)",
                                             code="fetch.too-large", url=url, status=resp.status_code, hint=hint)
                        if self.stop.is_set():
                            raise FetchError(f"{self._where(url)}: interrupted", code="fetch.interrupted", url=url)
                    if length.isdigit() and len(buf) != int(length) and not resp.headers.get("content-encoding"):
                        raise FetchError(f"{url}: body of {len(buf)} bytes, Content-Length said {length}",
                                         code="fetch.truncated", url=url, status=resp.status_code)
                return resp, bytes(buf), stamp
        except BaseException as exc:
            self._net.drop_current()
            if self.stop.is_set() and isinstance(exc, (httpx.HTTPError, FetchError)):
                raise FetchError(f"{self._where(url)}: interrupted", code="fetch.interrupted", url=url) from None
            if isinstance(exc, httpx.TimeoutException) and self._net.expired():
                raise FetchError(f"{self._where(url)}: timed out: no complete answer within the total time "
                                 f"budget of {self.total_timeout:g} s", code="fetch.timeout", url=url,
                                 hint="raise --total-timeout (or --timeout), or check the registry") from None
            if not isinstance(exc, httpx.HTTPError):
                raise
            self._transport_error(url, exc)
            raise  # pragma: no cover - _transport_error always raises
        finally:
            self._net.end()

    def _transport_error(self, url: str, exc: httpx.HTTPError) -> None:
        text = shown(str(exc))
        if isinstance(exc, httpx.TimeoutException):
            raise FetchError(f"{self._where(url)}: timed out ({type(exc).__name__})", code="fetch.timeout",
                             url=url, hint="raise --connect-timeout/--read-timeout, or check the host and port") \
                from None
        if isinstance(exc, httpx.ConnectError):
            if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower():
                raise FetchError(f"{self._where(url)}: TLS certificate not trusted ({text})", code="fetch.tls",
                                 url=url, hint="trust a private CA with --ca-file PEM; --insecure only if you "
                                               "accept an unverified connection") from None
            raise FetchError(f"cannot connect to {self._where(url)}: {text or 'connection failed'}",
                             code="fetch.connect", url=url,
                             hint="check the host, the port and --plain-http") from None
        if isinstance(exc, httpx.UnsupportedProtocol):
            raise PolicyError(f"{self._where(url)}: unsupported scheme; not fetched", code="policy.scheme",
                              url=url) from None
        if isinstance(exc, httpx.RemoteProtocolError) and "location header" in text.lower():
            # httpx reads Location even when not following: a redirect to a URL it cannot parse
            raise PolicyError(f"{self._where(url)}: redirect to an invalid URL ({text}); refused",
                              code="policy.redirect", url=url) from None
        if isinstance(exc, httpx.RemoteProtocolError):
            code = "fetch.truncated" if "incomplete" in text or "complete message body" in text else "fetch.transport"
            raise FetchError(f"{self._where(url)}: {text or 'the server closed the connection'}", code=code,
                             url=url) from None
        raise FetchError(f"{self._where(url)}: {type(exc).__name__}: {text or 'connection lost'}",
                         code="fetch.transport", url=url) from None

    def _call(self, method: str, url: str, headers: dict[str, str], limit: int, *,
              timeout: httpx.Timeout | None = None, data: dict[str, str] | None = None,
              check: Callable[[httpx.Response, bytes], str | None] | None = None,
              retries: int | None = None, limit_flag: str | None = None) -> tuple[httpx.Response, bytes, str]:
        """:meth:`_send` with retries (429 with Retry-After, 502/503/504, resets, timeouts,
        truncated bodies, ``check`` failures), exponential backoff with full jitter."""
        policy = self.retry
        limit_attempts = policy.retries if retries is None else retries
        attempt = 0
        waited = 0.0
        while True:
            resp: httpx.Response | None = None
            try:
                resp, body, stamp = self._send(method, url, headers, limit, timeout=timeout, data=data,
                                               limit_flag=limit_flag)
                if resp.status_code in RETRY_STATUS:
                    problem = f"HTTP {resp.status_code}"
                    failure: FetchError | None = None
                else:
                    why = check(resp, body) if check is not None and resp.status_code < 300 else None
                    if why is None:
                        return resp, body, stamp
                    problem = why
                    self._net.drop_current()  # what follows this body on the connection cannot be trusted
                    failure = FetchError(f"{self._where(url)}{shown(httpx.URL(url).raw_path.decode('ascii', 'replace'))}"
                                         f": {why}", code="fetch.digest-mismatch", url=url, status=resp.status_code)
            except FetchError as exc:
                if exc.code not in RETRY_CODES:
                    raise
                problem, failure = exc.message, exc
            delay = None
            if resp is not None and resp.status_code in (429, 503):
                delay = parse_retry_after(resp.headers.get("retry-after"), time.time())
            delay = policy.backoff(attempt) if delay is None else min(delay, policy.max_delay)
            if attempt >= limit_attempts or waited + delay > policy.budget or self.stop.is_set():
                if failure is None:
                    assert resp is not None
                    return resp, body, stamp  # the caller turns the status into an error
                tries = attempt + 1
                raise type(failure)(f"{failure.message} (gave up after {tries} attempt{'s' * (tries > 1)})",
                                    code=failure.code, hint=failure.hint or "raise --retries or --read-timeout",
                                    url=failure.url, status=failure.status) from None
            attempt += 1
            if self.on_retry is not None:
                where = problem if problem.startswith(("http://", "https://", "cannot")) else \
                    f"{self._where(url)}{shown(httpx.URL(url).raw_path.decode('ascii', 'replace'))}: {problem}"
                self.on_retry(f"{where}; retry {attempt}/{limit_attempts} in {delay:.2f} s")
            if self.stop.wait(delay):
                raise FetchError(f"{self._where(url)}: interrupted", code="fetch.interrupted", url=url)
            waited += delay

    @staticmethod
    def _where(url: str) -> str:
        u = httpx.URL(url)
        return shown(f"{u.scheme}://{u.netloc.decode('ascii', 'replace')}")

    def _exchange(self, kind: str, method: str, url: str, accept: str | None, resp: httpx.Response,
                  body: bytes, stamp: str, grant: dict[str, Any] | None) -> Exchange:
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.raw]
        headers, redacted = redact_headers(raw)
        return Exchange(kind, method, url, accept, resp.status_code, headers, body, stamp, grant,
                        [f"header:{n}" for n in redacted])

    def _error(self, what: str, url: str, resp: httpx.Response, body: bytes) -> FetchError:
        errors = _parse_error_body(body)
        status = resp.status_code
        retry_hint = f"rate limited: the registry asks to retry after {resp.headers['retry-after']} s" \
            if resp.headers.get("retry-after") else None
        if retry_hint:
            retry_hint = shown(retry_hint)
        if errors:
            first = errors[0]
            raw_code = str(first.get("code", "UNKNOWN"))
            msg = shown(str(first.get("message", "")).strip())
            hint = _HINTS.get(raw_code)
            if raw_code == "TOOMANYREQUESTS" and retry_hint:
                hint = retry_hint
            # the machine-readable code keeps only [a-z0-9-]: it is chosen by the registry
            slug = re.sub(r"[^a-z0-9]+", "-", raw_code.lower()).strip("-")[:64] or "unknown"
            return RegistryError(f"{what}: {shown(raw_code, 80)}{': ' + msg if msg else ''} (HTTP {status})",
                                 errors=errors, code=f"registry.{slug}", hint=hint, url=url, status=status)
        snippet = shown(body[:120].decode("utf-8", "replace").strip())
        return RegistryError(f"{what}: HTTP {status}{' ' + snippet if snippet else ''}", code=f"registry.http-{status}",
                             url=url, status=status, hint=retry_hint if status == 429 else None)

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
                probing = scheme == "https" and len(schemes) > 1
                try:
                    resp, body, _ = self._call("GET", url, {}, SMALL_LIMIT, retries=0 if probing else None)
                except FetchError as exc:
                    last = exc
                    # loopback: no TLS there, try http (spec §6.1); a TLS server with an untrusted
                    # certificate is not downgraded to plain http
                    if exc.code in ("fetch.connect", "fetch.transport") and probing:
                        continue
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
            raise PolicyError(f"token realm {shown(repr(realm))} is not a URL", code="policy.realm") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise PolicyError(f"token realm {shown(repr(realm))} is not an absolute http(s) URL", code="policy.realm")
        if url.scheme == "http" and self.scheme == "https":
            raise PolicyError(f"https registry names a plain-http token realm {shown(repr(realm))}; refused",
                              code="policy.realm-downgrade")
        reg_host = split_host(self.host)[0].lower()
        realm_host = url.host.lower()
        problem = realm_address_problem(realm_host, self.host)
        if problem:
            # SSRF guard: a registry must not make us call 169.254.169.254 & co (ggcr#2243)
            raise PolicyError(f"token realm {shown(repr(realm))} points at {problem}; refused (SSRF guard)",
                              code="policy.realm-ssrf")
        if self.has_credentials and realm_host != reg_host \
                and realm_host not in _REALM_ALLOW.get(reg_host, set()) \
                and realm_host.split(".")[-2:] != reg_host.split(".")[-2:]:
            raise PolicyError(
                f"registry {self.host} sends credentials to token realm host {shown(realm_host)}; refused",
                code="policy.realm-host",
                hint="credentials are only sent to a realm on the registry's own domain; "
                     "use --no-creds for anonymous access")

    # --- tokens (spec §5.3, §5.4, §5.6) ---

    def _basic(self) -> str:
        secret = self._password if self._password is not None else self._identity_token
        raw = f"{self.username or '<token>'}:{secret}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def _token(self, scopes: tuple[str, ...], *, refresh: bool = False, stale: str | None = None) -> _Token:
        ch = self.challenge
        assert ch is not None and ch.realm
        key = (ch.realm, ch.service or "", tuple(sorted(scopes)))
        with self._lock:
            lock = self._scope_locks.setdefault(key[2], threading.Lock())
        with lock:
            cached = self._tokens.get(key)
            if cached and not refresh and cached.expires_at - 10 > time.time():
                return cached
            if cached and refresh and stale is not None and cached.value != stale:
                return cached  # another worker already replaced the expired token
            token = self._request_token(ch, list(key[2]))
            self._tokens[key] = token
            return token

    def _request_token(self, ch: Challenge, scopes: list[str]) -> _Token:
        if self._identity_token is not None:
            tok = self._oauth_token(ch, scopes)
            if tok is not None:
                return tok
        url = httpx.URL(ch.realm)
        params = list(url.params.multi_items())  # keep a query already in the realm (spec §5.3)
        if self.username is not None:
            params.append(("account", self.username))
        if ch.service:
            params.append(("service", ch.service))
        params += [("scope", s) for s in scopes]
        full = str(url.copy_with(params=params))
        headers = {"Authorization": self._basic()} if self.has_credentials else {}
        resp, body, stamp = self._call("GET", full, headers, SMALL_LIMIT, timeout=self._timeout(TOKEN_TIMEOUT))
        return self._token_answer("GET", full, resp, body, stamp, scopes)

    def _oauth_token(self, ch: Challenge, scopes: list[str]) -> _Token | None:
        """spec §5.6: POST grant_type=refresh_token; None when the server has no POST form."""
        form = {"grant_type": "refresh_token", "refresh_token": self._identity_token or "", "client_id": CLIENT_ID,
                "service": ch.service or ""}
        if scopes:
            form["scope"] = " ".join(scopes)  # one field, space-separated in the POST form
        resp, body, stamp = self._call("POST", ch.realm or "", {}, SMALL_LIMIT, data=form,
                                       timeout=self._timeout(TOKEN_TIMEOUT))
        if resp.status_code in (400, 404, 405, 501):
            return None  # Harbor and others: fall back to GET with Basic (spec §5.6)
        return self._token_answer("POST", ch.realm or "", resp, body, stamp, scopes)

    def _token_answer(self, method: str, full: str, resp: httpx.Response, body: bytes, stamp: str,
                      scopes: list[str]) -> _Token:
        what = f"token service {self._where(full)}"
        if resp.status_code in (401, 403):
            if self.has_credentials:
                who = f"user {self.username!r}" if self.username else "the identity token"
                raise AuthError(f"{what} refused the credentials of {who} (HTTP {resp.status_code})",
                                code="auth.refused", url=full, status=resp.status_code,
                                hint="check the user name and the password (or log in again)")
            raise AuthError(f"{what} refused an anonymous token (HTTP {resp.status_code})", code="auth.refused",
                            url=full, status=resp.status_code,
                            hint="give credentials: -u USER --password-stdin")
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
            ex = self._exchange("token", method, full, None, resp, saved, stamp, grant)
            ex.redacted = [*removed, *ex.redacted]
            self.on_token(ex)
        if self.has_credentials:
            for s in scopes:
                wanted = s.rsplit(":", 1)[-1].split(",")
                if sorted(missing_actions(grant, s)) == sorted(a for a in wanted if a):
                    raise empty_grant_error(s)
        return _Token(parsed.token, parsed.expires_at, grant)

    def _auth(self, scopes: tuple[str, ...], refresh: bool = False,
              stale: str | None = None) -> tuple[dict[str, str], dict[str, Any] | None]:
        ch = self.challenge
        if ch is None:
            return {}, None
        if ch.scheme == "basic":
            if self.username is None or self._password is None:
                return {}, None
            # spec §5.10 rule 4: no credentials over plain http unless asked for or loopback
            if self.scheme != "https" and not (self.plain_http or is_loopback(self.host)):
                raise PolicyError("refusing to send Basic credentials over plain http", code="policy.plain-http")
            return {"Authorization": self._basic()}, {"format": "basic", "subject": self.username}
        tok = self._token(scopes, refresh=refresh, stale=stale[7:] if stale else None)
        return {"Authorization": f"Bearer {tok.value}"}, tok.grant

    # --- requests ---

    def request(self, kind: str, path: str, *, scopes: tuple[str, ...], accept: str | None = None,
                limit: int = SMALL_LIMIT, what: str = "", method: str = "GET",
                check: Callable[[httpx.Response, bytes], str | None] | None = None,
                limit_flag: str | None = None) -> Exchange:
        """GET (or HEAD) ``path`` on the registry with auth, no redirects; non-2xx raises.

        A 401 gets one fresh token (expired or revoked token, or ``insufficient_scope``).
        """
        self.ping()
        url = path if path.startswith(("http://", "https://")) else self.base + path
        headers = {"Accept": accept} if accept else {}
        refreshed = False
        used: str | None = None
        while True:
            auth, grant = self._auth(scopes, refresh=refreshed, stale=used)
            used = auth.get("Authorization")
            resp, body, stamp = self._call(method, url, {**headers, **auth}, limit, check=check,
                                           limit_flag=limit_flag)
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
                if self.challenge is not None and self.challenge.scheme == "bearer":
                    refreshed = True  # 401 without a challenge (gcr.io did this): one fresh token
                    continue
            break
        if 300 <= resp.status_code < 400:
            raise PolicyError(f"{what or url}: registry redirected to {shown(resp.headers.get('location', '?'))}; "
                              "not followed for manifests and tag lists", code="policy.redirect", url=url,
                              status=resp.status_code)
        if resp.status_code == 401 and not self.has_credentials and grant is not None:
            raise AuthError(f"{what or url}: anonymous access not granted (HTTP 401)", code="auth.anonymous",
                            url=url, status=401, hint="give credentials: -u USER --password-stdin")
        if resp.status_code >= 400:
            raise self._error(what or url, url, resp, body)
        return self._exchange(kind, method, url, accept, resp, body, stamp, grant)

    def get_manifest(self, repository: str, ref: str, accept: str, *,
                     check: Callable[[httpx.Response, bytes], str | None] | None = None) -> Exchange:
        """``GET /v2/<name>/manifests/<ref>`` with ``accept`` (size cap: max_manifest_size).

        ``check(response, body)`` returns why a 2xx body is not good (digest mismatch...);
        such answers are retried and never returned.
        """
        return self.request("manifests", f"/v2/{repository}/manifests/{_path_part(ref)}",
                            scopes=(repository_scope(repository),), accept=accept,
                            limit=self.max_manifest_size, what=f"{self.host}/{repository}:{shown(ref)}", check=check,
                            limit_flag="--max-manifest-size")

    def head_manifest(self, repository: str, ref: str, accept: str) -> Exchange:
        """``HEAD /v2/<name>/manifests/<ref>`` (spec §6.5): headers only."""
        return self.request("manifests", f"/v2/{repository}/manifests/{_path_part(ref)}",
                            scopes=(repository_scope(repository),), accept=accept, method="HEAD",
                            what=f"{self.host}/{repository}:{shown(ref)} (HEAD)")

    def pages(self, kind: str, path: str, *, scopes: tuple[str, ...], what: str, notes: list[str],
              max_pages: int = MAX_PAGES) -> Iterator[Exchange]:
        """GET ``path`` and every ``Link: rel="next"`` page after it (spec §6.3).

        Relative and absolute links are resolved against the page URL and sent exactly as
        written. Paging stops, with a line added to ``notes``, at a link to another scheme
        or host (not followed: ggcr#2332), a page seen before or a ``last`` that does not
        increase (loop), or after ``max_pages`` pages.
        """
        self.ping()
        home = _origin(httpx.URL(self.base))
        url = self.base + path
        seen = {url}
        last_marker: str | None = None
        for _ in range(max_pages):
            ex = self.request(kind, url, scopes=scopes, accept="application/json", what=what,
                              limit=self.max_list_size, limit_flag="--max-list-size")
            yield ex
            nexts = [t for t, rels in parse_link_header(ex.header_values("link")) if "next" in rels]
            if not nexts:
                return
            try:
                target = httpx.URL(ex.url).join(nexts[0])
            except httpx.InvalidURL:
                notes.append(f"{what}: Link {shown(repr(nexts[0]))} is not a URL; paging stopped")
                return
            if _origin(target) != home:
                notes.append(f"{what}: Link to {shown(target.scheme)}://{shown(target.host)}"
                             f"{':' + str(target.port) if target.port else ''} (another scheme or host) "
                             "not followed; paging stopped (SSRF guard)")
                return
            nxt = str(target)
            marker = dict(target.params.multi_items()).get("last")
            if nxt in seen or (marker is not None and last_marker is not None and marker <= last_marker):
                notes.append(f"{what}: pages loop (next page {shown(nxt)} seen before or 'last' not increasing); "
                             "paging stopped")
                return
            seen.add(nxt)
            last_marker = marker if marker is not None else last_marker
            url = nxt
        notes.append(f"{what}: more than {max_pages} pages; stopped (raise --max-pages)")

    def list_tags(self, repository: str, notes: list[str] | None = None,
                  max_pages: int = MAX_PAGES) -> Iterator[Exchange]:
        """``GET /v2/<name>/tags/list`` and its pages (see :meth:`pages`)."""
        yield from self.pages("tags", f"/v2/{repository}/tags/list", scopes=(repository_scope(repository),),
                              what=f"{self.host}/{repository} tags", notes=notes if notes is not None else [],
                              max_pages=max_pages)

    def catalog(self, notes: list[str], max_pages: int = MAX_PAGES) -> Iterator[Exchange]:
        """``GET /v2/_catalog`` and its pages (scope ``registry:catalog:*``)."""
        yield from self.pages("catalog", "/v2/_catalog", scopes=("registry:catalog:*",),
                              what=f"{self.host} catalog", notes=notes, max_pages=max_pages)

    def get_blob(self, repository: str, digest: str, *, limit: int = BLOB_LIMIT,
                 check: Callable[[httpx.Response, bytes], str | None] | None = None) -> Exchange:
        """``GET /v2/<name>/blobs/<digest>``; redirects followed by hand (CVE-2020-15157).

        ``Authorization`` is sent only to the registry's own origin (scheme, host, port: a
        redirect to another port or from 127.0.0.1 to localhost counts as another origin);
        another origin is fetched without credentials, and an https -> http downgrade is
        refused (spec §5.10 rule 3).
        """
        self.ping()
        scopes = (repository_scope(repository),)
        home = _origin(httpx.URL(self.base))
        url = first = f"{self.base}/v2/{repository}/blobs/{digest}"
        hops: list[str] = []
        what = f"{self.host}/{repository}@{shown(digest)}"
        refreshed = False
        used: str | None = None
        grant: dict[str, Any] | None = None
        for _ in range(MAX_REDIRECTS + 1):
            target = httpx.URL(url)
            same = _origin(target) == home
            auth, g = self._auth(scopes, refresh=refreshed, stale=used) if same else ({}, None)
            used = auth.get("Authorization") if same else used
            grant = g if same else grant
            resp, body, stamp = self._call("GET", url, auth, limit, check=check)
            if resp.status_code == 401 and same and not refreshed and self.challenge is not None:
                refreshed = True
                continue
            if resp.status_code in (301, 302, 303, 307, 308):
                loc = resp.headers.get("location")
                if not loc:
                    raise FetchError(f"{what}: redirect without Location", code="fetch.redirect", url=url)
                try:
                    nxt = target.join(loc)
                except httpx.InvalidURL:
                    raise PolicyError(f"{what}: redirect to {shown(repr(loc))}, not a URL; refused",
                                      code="policy.redirect", url=url) from None
                if nxt.scheme not in ("http", "https"):
                    raise PolicyError(f"{what}: redirect to an unsupported scheme ({shown(nxt.scheme, 40)}); refused",
                                      code="policy.redirect-scheme", url=url)
                if target.scheme == "https" and nxt.scheme != "https":
                    raise PolicyError(f"{what}: redirect from https to {nxt.scheme} refused", code="policy.downgrade")
                problem = address_problem(nxt.host, self.host)
                if problem:
                    # SSRF guard: the same rule as for token realms
                    raise PolicyError(f"{what}: redirect to {shown(nxt.host)} ({problem}) refused (SSRF guard)",
                                      code="policy.redirect-ssrf", url=url)
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


UNSEGMENTABLE = ("", ".", "..")  # tags no URL path segment can carry (dot segments are removed)


def _path_part(ref: str) -> str:
    """A tag or digest as one URL path segment (a forced odd tag must not add segments).

    ``''``, ``.`` and ``..`` are refused: URL normalisation would fetch another path than
    the one recorded."""
    if ref in UNSEGMENTABLE:
        raise FetchError(f"tag {ref!r} cannot be expressed as a URL path segment; not fetched",
                         code="fetch.path-segment")
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-._~:") else
                   "".join(f"%{b:02X}" for b in ch.encode()) for ch in ref)
    return safe


def _ssl_context(ca_file: str) -> ssl.SSLContext:
    """Default verification (certifi bundle, like httpx) plus the CAs of ``ca_file``."""
    try:
        import certifi

        ctx = ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        ctx = ssl.create_default_context()
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--ca-file {ca_file}: cannot load CA certificates ({exc})", code="usage.ca-file") from None
    return ctx
