"""A small v2 registry emulator that misbehaves on purpose (tests only, 127.0.0.1 only).

One threaded HTTP server plays registry and token service (``/token``, GET with Basic or
anonymous, OAuth2 POST with a refresh token); a second one plays blob storage that blob
GETs are redirected to (another port: another origin). Faults are queued per request path
(``FaultServer.plan(path, ["429", "reset", ...])``) or drawn for every manifest GET from a
seeded random plan (``chaos``). Every request is recorded, with the Authorization header,
so tests can prove where credentials went.

Manifests are signed schema 1 documents made with ``fixtures/signer.py``; the registry
digest of each one (sha256 of the payload) is known here, independently of mfkit.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import json
import random
import secrets
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fixtures.signer import Signer, build_payload, ec_key, sign

__all__ = ["FaultServer", "Manifest", "make_manifest", "make_tls"]

SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SERVICE = "fault-registry"
_KEY = Signer(ec_key(7))


@dataclass
class Manifest:
    """One served document and its registry digest."""

    body: bytes
    digest: str
    content_type: str = SIGNED


def make_manifest(repo: str, tag: str) -> Manifest:
    """A signed schema1 document for ``repo:tag`` (payload digest = registry digest)."""
    blob = "sha256:" + hashlib.sha256(f"{repo}:{tag}".encode()).hexdigest()
    payload = build_payload(repo, tag, [(blob, f"/bin/sh -c #(nop) LABEL tag={tag}")])
    body = sign(payload, [_KEY], "2018-09-03T09:51:54Z")
    return Manifest(body, "sha256:" + hashlib.sha256(payload).hexdigest())


def make_tls(tmpdir: Any) -> tuple[ssl.SSLContext, str]:
    """A CA and a server certificate for 127.0.0.1; returns (server context, CA PEM path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mfkit test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path = tmpdir / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path, key_path = tmpdir / "server.pem", tmpdir / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert_path), str(key_path))
    return ctx, str(ca_path)


@dataclass
class FaultServer:
    """The misbehaving registry. Start with :meth:`start` (or use as a context manager).

    Attributes:
        repos: repository -> {tag: Manifest}; ``tag_list`` overrides what tags/list shows.
        users: user -> password accepted by the token service (Basic).
        refresh_tokens: identity token -> user, for the OAuth2 POST.
        oauth_post: answer the POST form (else 404, so clients fall back to GET).
        anonymous: hand out tokens without credentials.
        token_uses: a token stops working (401 invalid_token) after this many uses (0: never).
        realm: override of the realm named in challenges.
        page_size: tags/catalog page size; ``link_mode`` how the next link is written.
        chaos: (seed, rate) - each manifest GET path gets a random fault list first.
        retry_after: value of Retry-After on 429/503.
        slow: seconds to wait between body chunks of manifest answers.
        trickle: seconds between header lines / body bytes of the ``slow-headers`` and
            ``slow-body`` faults.
        blob_location: Location of blob redirects (``{port}`` and ``{digest}`` filled in).
        digest_header: overrides the Docker-Content-Digest of manifest answers.
        error_answer: (status, code, message) answered to every manifest GET.
        short_length: manifest answers announce this many bytes fewer than they send
            (fault ``short-length``: the rest stays in the kept-alive connection).
    """

    repos: dict[str, dict[str, Manifest]] = field(default_factory=dict)
    tag_list: dict[str, list[str]] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=lambda: {"alice": "s3cret-pw"})
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    oauth_post: bool = True
    anonymous: bool = False
    token_uses: int = 0
    realm: str | None = None
    page_size: int = 0
    link_mode: str = "relative"
    chaos: tuple[int, float] | None = None
    retry_after: str = "0"
    slow: float = 0.0
    tls: ssl.SSLContext | None = None
    trickle: float = 0.5
    blob_location: str | None = None
    digest_header: str | None = None
    error_answer: tuple[int, str, str] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[str]] = {}
        self._tokens: dict[str, list[Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.blob_requests: list[dict[str, Any]] = []
        self.issued: list[str] = []
        self.blobs: dict[str, bytes] = {}
        self._servers: list[ThreadingHTTPServer] = []
        self.port = 0
        self.blob_port = 0
        self.closing = threading.Event()

    # --- setup ---

    def add(self, repo: str, tags: list[str]) -> dict[str, Manifest]:
        """Serve signed schema1 manifests for ``tags`` in ``repo``."""
        made = {t: make_manifest(repo, t) for t in tags}
        self.repos.setdefault(repo, {}).update(made)
        return made

    def plan(self, path: str, faults: list[str]) -> None:
        """Apply ``faults`` to the next requests of ``path`` (one each), then behave."""
        with self._lock:
            self._faults.setdefault(path, []).extend(faults)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    # --- serving ---

    def _next_fault(self, path: str, method: str) -> str | None:
        with self._lock:
            if path not in self._faults and self.chaos and method == "GET" and "/manifests/" in path:
                seed, rate = self.chaos
                rng = random.Random(f"{seed}:{path}")
                plan = []
                while rng.random() < rate and len(plan) < 3:
                    plan.append(rng.choice(["429", "503", "502", "504", "reset", "truncate", "wrongdigest"]))
                self._faults[path] = plan
            queue = self._faults.get(path)
            return queue.pop(0) if queue else None

    def _token_for(self, user: str | None, scopes: list[str]) -> dict[str, Any]:
        token = "tok-" + secrets.token_urlsafe(16)
        with self._lock:
            self._tokens[token] = [user, set(scopes), 0]
            self.issued.append(token)
        return {"token": token, "expires_in": 300,
                "issued_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}

    def _authorized(self, header: str | None, scope: str) -> tuple[bool, str | None]:
        if not header or not header.startswith("Bearer "):
            return False, None
        with self._lock:
            info = self._tokens.get(header[7:])
            if info is None:
                return False, "invalid_token"
            info[2] += 1
            if self.token_uses and info[2] > self.token_uses:
                return False, "invalid_token"
            if scope not in info[1]:
                return False, "insufficient_scope"
        return True, None

    def start(self) -> "FaultServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                return

            def _record(self) -> None:
                with server._lock:
                    server.requests.append({"method": self.command, "path": self.path,
                                            "authorization": self.headers.get("Authorization")})

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                      length: int | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, status: int, code: str, headers: dict[str, str] | None = None) -> None:
                body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
                self._send(status, body, {"Content-Type": "application/json", **(headers or {})})

            def _reset(self) -> None:
                # a status line cut in the middle, then an RST (SO_LINGER 0)
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-")
                self.wfile.flush()
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def _challenge(self, scope: str, error: str | None) -> None:
                realm = server.realm or f"{server.url}/token"
                value = f'Bearer realm="{realm}",service="{SERVICE}",scope="{scope}"'
                if error:
                    value += f',error="{error}"'
                self._error(401, "UNAUTHORIZED", {"WWW-Authenticate": value,
                                                  "Docker-Distribution-API-Version": "registry/2.0"})

            def do_HEAD(self) -> None:  # noqa: N802
                self.do_GET()

            def do_POST(self) -> None:  # noqa: N802
                self._record()
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if urlsplit(self.path).path != "/token" or not server.oauth_post:
                    self._error(404, "NOT_FOUND")
                    return
                user = server.refresh_tokens.get((form.get("refresh_token") or [""])[0])
                if form.get("grant_type") != ["refresh_token"] or user is None:
                    self._send(401, b'{"error":"invalid_grant"}', {"Content-Type": "application/json"})
                    return
                scopes = " ".join(form.get("scope", [])).split()
                answer = server._token_for(user, scopes)
                answer = {"access_token": answer["token"], "expires_in": 300, "scope": " ".join(scopes)}
                self._send(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})

            def do_GET(self) -> None:  # noqa: N802
                self._record()
                url = urlsplit(self.path)
                path = url.path
                if path == "/token":
                    self._token(url.query)
                    return
                if path == "/v2/":
                    self._challenge("", None) if self.headers.get("Authorization") is None else \
                        self._send(200, b"{}", {"Content-Type": "application/json"})
                    return
                fault = server._next_fault(path, self.command)
                if fault and self._fault(fault, path):
                    return
                if path == "/v2/_catalog":
                    ok, err = server._authorized(self.headers.get("Authorization"), "registry:catalog:*")
                    if not ok:
                        self._challenge("registry:catalog:*", err)
                        return
                    self._page(sorted(server.repos), "repositories", {}, url.query, path)
                    return
                parts = path[len("/v2/"):].split("/") if path.startswith("/v2/") else []
                if len(parts) < 3:
                    self._error(404, "NOT_FOUND")
                    return
                repo, kind, ref = "/".join(parts[:-2]), parts[-2], parts[-1]
                scope = f"repository:{repo}:pull"
                ok, err = server._authorized(self.headers.get("Authorization"), scope)
                if not ok:
                    self._challenge(scope, err)
                    return
                if (kind, ref) == ("tags", "list"):
                    tags = server.tag_list.get(repo, sorted(server.repos.get(repo, {})))
                    self._page(tags, "tags", {"name": repo}, url.query, path)
                elif kind == "manifests":
                    self._manifest(repo, ref, fault)
                elif kind == "blobs":
                    self.send_response(307)
                    where = (server.blob_location or "http://127.0.0.1:{port}/storage/{digest}?sig=abc")
                    self.send_header("Location", where.format(port=server.blob_port, digest=ref))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._error(404, "NOT_FOUND")

            def _token(self, query: str) -> None:
                params = parse_qs(query)
                auth = self.headers.get("Authorization") or ""
                user = None
                if auth.startswith("Basic "):
                    name, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    if server.users.get(name) == pw:
                        user = name
                    elif server.refresh_tokens.get(pw) == name or (name == "<token>" and pw in server.refresh_tokens):
                        user = server.refresh_tokens[pw]
                    else:
                        self._error(401, "UNAUTHORIZED", {"WWW-Authenticate": 'Basic realm="token"'})
                        return
                elif not server.anonymous:
                    self._error(401, "UNAUTHORIZED", {"WWW-Authenticate": 'Basic realm="token"'})
                    return
                answer = server._token_for(user, params.get("scope", []))
                self._send(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})

            def _page(self, items: list[str], member: str, extra: dict[str, Any], query: str, path: str) -> None:
                params = parse_qs(query, keep_blank_values=True)
                mode = server.link_mode
                if mode == "opaque" and "cursor" in params and "cursor=a%2Fb+c%3D%3D" not in query:
                    self._error(400, "CURSOR_REENCODED")  # the opaque value must come back byte-exact
                    return
                last = (params.get("last") or [""])[0]
                n = server.page_size or len(items) or 1
                start = 0
                if last:
                    start = next((i + 1 for i, t in enumerate(items) if t == last), len(items))
                if mode == "loop" and last:
                    start = 0
                page = items[start:start + n]
                headers = {"Content-Type": "application/json"}
                if start + n < len(items) and page:
                    rel = f"{path}?last={page[-1]}&n={n}"
                    if mode == "opaque":
                        rel += "&cursor=a%2Fb+c%3D%3D"
                    if mode == "loop":
                        rel = f"{path}?last={items[0]}&n={n}"
                    link = {
                        "relative": f'<{rel}>; rel="next"',
                        "absolute": f'<{server.url}{rel}>; rel="next"',
                        "unquoted": f"<{rel}>;rel=next",
                        "multi": f'<{path}?n={n}>; rel="first", <{rel}>; rel="next"',
                        "opaque": f'<{rel}>; rel="next"',
                        "loop": f'<{rel}>; rel="next"',
                        "cross-host": f'<http://localhost:{server.port}{rel}>; rel="next"',
                        "cross-scheme": f'<https://127.0.0.1:{server.port}{rel}>; rel="next"',
                    }[mode]
                    headers["Link"] = link
                self._send(200, json.dumps({**extra, member: page}).encode(), headers)

            def _manifest(self, repo: str, ref: str, fault: str | None) -> None:
                if server.error_answer is not None and self.command == "GET":
                    status, code, message = server.error_answer
                    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
                    self._send(status, body, {"Content-Type": "application/json"})
                    return
                doc = server.repos.get(repo, {}).get(ref)
                if doc is None:
                    doc = next((m for m in server.repos.get(repo, {}).values() if m.digest == ref), None)
                if doc is None:
                    self._error(404, "MANIFEST_UNKNOWN")
                    return
                headers = {"Content-Type": doc.content_type,
                           "Docker-Content-Digest": server.digest_header or doc.digest,
                           "Docker-Distribution-API-Version": "registry/2.0"}
                body = doc.body
                if fault == "short-length":
                    # announce fewer bytes than sent: the tail stays in the kept-alive connection
                    self.send_response(200)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body) - 40))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                    return
                if fault == "wrongdigest":
                    body = body.replace(b'"schemaVersion": 1', b'"schemaVersion":  1', 1)
                if fault == "cut":  # a consistent but cut body: Content-Length matches what is sent
                    body = body[: len(body) // 2]
                if server.slow and self.command == "GET":
                    self.send_response(200)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    for i in range(0, len(body), 64):
                        if server.closing.is_set():
                            break
                        self.wfile.write(body[i:i + 64])
                        self.wfile.flush()
                        time.sleep(server.slow)
                    return
                self._send(200, body, headers)

            def _fault(self, fault: str, path: str) -> bool:
                if fault in ("429", "502", "503", "504"):
                    extra = {"Retry-After": server.retry_after} if fault in ("429", "503") else {}
                    code = {"429": "TOOMANYREQUESTS", "503": "UNAVAILABLE"}.get(fault, "UNKNOWN")
                    self._error(int(fault), code, extra)
                    return True
                if fault == "reset":
                    self._reset()
                    return True
                if fault == "truncate":
                    parts = path[len("/v2/"):].split("/")
                    doc = server.repos.get("/".join(parts[:-2]), {}).get(parts[-1])
                    body = doc.body if doc else b"{}"
                    self.send_response(200)
                    self.send_header("Content-Type", SIGNED)
                    self.send_header("Content-Length", str(len(body) + 100))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return True
                if fault == "slow-headers":
                    # a status line, then one header line per `trickle` seconds, never the end
                    try:
                        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                        self.wfile.flush()
                        for i in range(600):
                            if server.closing.wait(server.trickle):
                                break
                            self.wfile.write(f"X-Slow-{i}: y\r\n".encode())
                            self.wfile.flush()
                    except OSError:
                        pass
                    self.close_connection = True
                    return True
                if fault == "slow-body":
                    # complete headers, then one body byte per `trickle` seconds
                    try:
                        self.send_response(200)
                        self.send_header("Content-Type", SIGNED)
                        self.send_header("Content-Length", "100000")
                        self.end_headers()
                        self.wfile.flush()
                        for _ in range(600):
                            if server.closing.wait(server.trickle):
                                break
                            self.wfile.write(b"x")
                            self.wfile.flush()
                    except OSError:
                        pass
                    self.close_connection = True
                    return True
                if fault in ("endless", "lying-small", "lying-big"):
                    self.send_response(200)
                    self.send_header("Content-Type", SIGNED)
                    if fault == "lying-small":
                        self.send_header("Content-Length", "100")
                    elif fault == "lying-big":
                        self.send_header("Content-Length", str(10 << 30))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    chunk = b"x" * 65536
                    try:
                        for _ in range(4096):  # bounded: at most 256 MiB, stops when the client leaves
                            if server.closing.is_set():
                                break
                            self.wfile.write(chunk)
                    except OSError:
                        pass
                    self.close_connection = True
                    return True
                return False

        class Storage(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802
                with server._lock:
                    server.blob_requests.append({"path": self.path,
                                                 "authorization": self.headers.get("Authorization")})
                digest = urlsplit(self.path).path.rsplit("/", 1)[-1]
                body = server.blobs.get(digest, b"")
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        main = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            main.socket = self.tls.wrap_socket(main.socket, server_side=True)
        storage = ThreadingHTTPServer(("127.0.0.1", 0), Storage)
        for s in (main, storage):
            s.daemon_threads = True
            s.block_on_close = False
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            self._servers.append(s)
        self.port = main.server_address[1]
        self.blob_port = storage.server_address[1]
        return self

    def stop(self) -> None:
        """Stop both servers (bounded: threads are daemons)."""
        self.closing.set()
        for s in self._servers:
            s.shutdown()
            s.server_close()
        self._servers.clear()

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_date(seconds_from_now: float) -> str:
    """An HTTP-date ``seconds_from_now`` in the future (for Retry-After)."""
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)
