"""A Harbor-style token service for the test registry (loopback only, test keys only).

``GET /service/token?account=&service=&scope=...`` with HTTP Basic credentials answers
``{"token", "expires_in", "issued_at"}`` (no ``access_token``, like Harbor). The token is an
RS256 JWT whose ``kid`` is the libtrust key id of the certificate the registry trusts
(registry-notes.md). Every token issued is recorded so tests can prove none leaked.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from fixtures.signer import b64url, key_id

__all__ = ["TokenService", "make_token_key"]

ISSUER = "harbor-token-issuer"
SERVICE = "harbor-registry"


def make_token_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    """A fresh RSA key and its self-signed certificate (PEM) for ``rootcertbundle``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mfkit test token signer")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


def _scope(text: str) -> tuple[str, str, list[str]] | None:
    # spec §5.7: type is before the first ':', actions after the last ':'
    first, last = text.find(":"), text.rfind(":")
    if first <= 0 or last == first:
        return None
    return text[:first], text[first + 1:last], [a for a in text[last + 1:].split(",") if a]


@dataclass
class TokenService:
    """Threaded token endpoint. Start with :meth:`start`, stop with :meth:`stop`.

    Attributes:
        users: username -> password accepted.
        expires_in: lifetime written into tokens and answers (seconds).
        harbor_empty_grant: answer 200 with an empty grant for wrong credentials (Harbor).
        issued: every token string handed out (for leak tests).
        requests: one dict per request (path, params, had_basic, user) without secrets.
    """

    key: rsa.RSAPrivateKey
    users: dict[str, str]
    expires_in: int = 1800
    harbor_empty_grant: bool = False
    issued: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        self.kid = key_id(self.key.public_key())
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def realm(self) -> str:
        """The token URL the registry names in its challenges."""
        return f"http://{self.host}:{self.port}/service/token"

    def mint(self, subject: str, access: list[dict[str, Any]], expires_in: int | None = None) -> str:
        """Sign a JWT the registry accepts (RS256, kid = libtrust id, aud as a string)."""
        now = int(time.time())
        life = self.expires_in if expires_in is None else expires_in
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + life, "nbf": now - 1,
                  "iat": now, "jti": secrets.token_urlsafe(12), "access": access}
        head = b64url(json.dumps(header, separators=(",", ":")).encode())
        body = b64url(json.dumps(claims, separators=(",", ":")).encode())
        sig = self.key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        token = f"{head}.{body}.{b64url(sig)}"
        with self._lock:
            self.issued.append(token)
        return token

    def _answer(self, query: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        params = parse_qs(query, keep_blank_values=True)
        user, password = None, None
        if authorization and authorization.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            except ValueError:
                return 400, {"errors": [{"code": "UNAUTHORIZED", "message": "bad basic header"}]}
        with self._lock:
            self.requests.append({"params": {k: list(v) for k, v in params.items()},
                                  "had_basic": user is not None, "user": user})
        authed = user is not None and self.users.get(user) == password
        if user is not None and not authed and not self.harbor_empty_grant:
            return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        access: list[dict[str, Any]] = []
        if authed:
            for text in params.get("scope", []):
                for one in text.split(" "):
                    parsed = _scope(one)
                    if parsed:
                        access.append({"type": parsed[0], "name": parsed[1], "actions": parsed[2]})
        token = self.mint(user if authed else "", access)
        issued_at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 200, {"token": token, "expires_in": self.expires_in, "issued_at": issued_at}

    def start(self) -> None:
        """Listen on ``host:port`` (port 0 picks a free one) in a daemon thread."""
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                url = urlsplit(self.path)
                if url.path != "/service/token":
                    status, payload = 404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]}
                else:
                    status, payload = service._answer(url.query, self.headers.get("Authorization"))
                data = json.dumps(payload, indent=2).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="harbor"')
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt: str, *args: Any) -> None:  # quiet
                return

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-service", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket (bounded wait)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
