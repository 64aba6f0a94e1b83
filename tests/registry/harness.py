"""Start Debian's docker-registry (distribution 2.8.2) with Harbor-style token auth on loopback.

Plain module (no pytest) shared by the pytest fixture, ``make demo`` and the benchmark::

    with Harness.start() as reg:
        reg.url, reg.username, reg.password, reg.images[("k8s/nginx", "1.9")].digest

Every key made here is a throw-away test key living in a temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fixtures.signer import key_id

from .push import Pushed, Pusher, push_many, seed_images
from .token_service import ISSUER, SERVICE, TokenService, make_token_key

__all__ = ["Harness", "HarnessError", "registry_binary"]

READY_TIMEOUT = 15.0


class HarnessError(RuntimeError):
    """The registry could not be started."""


def registry_binary() -> str | None:
    """Path of ``docker-registry`` (env ``MFKIT_DOCKER_REGISTRY`` wins), or None."""
    return os.environ.get("MFKIT_DOCKER_REGISTRY") or shutil.which("docker-registry")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Harness:
    """A running registry + token service, and what was pushed into it."""

    workdir: Path
    port: int
    tokens: TokenService
    process: subprocess.Popen
    schema1_key: ec.EllipticCurvePrivateKey
    username: str
    password: str
    images: dict[tuple[str, str], Pushed] = field(default_factory=dict)
    _owns_workdir: bool = True

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` as used in references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Base URL of the registry."""
        return f"http://{self.host}"

    @property
    def registry_key_id(self) -> str:
        """libtrust key id of the key the registry re-signs schema1 with (computed here)."""
        return key_id(self.schema1_key.public_key())

    @classmethod
    def start(cls, *, seed: bool = True, workdir: Path | None = None) -> "Harness":
        """Generate keys and config, start both services, wait until ready, push fixtures."""
        binary = registry_binary()
        if not binary:
            raise HarnessError("docker-registry not found (apt-get install docker-registry)")
        owns = workdir is None
        root = Path(workdir or tempfile.mkdtemp(prefix="mfkit-registry-"))
        token_key, cert_pem = make_token_key()
        (root / "token.crt").write_bytes(cert_pem)
        schema1_key = ec.generate_private_key(ec.SECP256R1())
        # distribution wants a traditional EC PRIVATE KEY PEM (registry-notes.md)
        (root / "schema1-signing.key").write_bytes(schema1_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()))
        password = "pw-" + secrets.token_urlsafe(12)
        tokens = TokenService(key=token_key, users={"admin": password})
        tokens.start()
        port = _free_port()
        (root / "config.yml").write_text(
            "version: 0.1\n"
            "log: {level: warn, accesslog: {disabled: true}}\n"
            f"http: {{addr: 127.0.0.1:{port}, secret: {secrets.token_hex(8)}}}\n"
            f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
            "auth:\n  token:\n"
            f"    realm: {tokens.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
            f"    rootcertbundle: {root / 'token.crt'}\n"
            "compatibility:\n  schema1:\n    enabled: true\n"
            f"    signingkeyfile: {root / 'schema1-signing.key'}\n")
        log = open(root / "registry.log", "wb")  # noqa: SIM115 - closed by stop()
        proc = subprocess.Popen([binary, "serve", str(root / "config.yml")], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        h = cls(root, port, tokens, proc, schema1_key, "admin", password, _owns_workdir=owns)
        try:
            h._wait_ready()
            if seed:
                h.images = h.push(lambda p: seed_images(p, rsa.generate_private_key(65537, 2048)))
        except BaseException:
            h.stop()
            raise
        return h

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(f"docker-registry exited with {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/v2/", timeout=1.0).status_code == 401:
                    return
            time.sleep(0.05)
        raise HarnessError(f"docker-registry not ready after {READY_TIMEOUT}s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        """The end of the registry log, for error messages."""
        with contextlib.suppress(OSError):
            return (self.workdir / "registry.log").read_text(errors="replace")[-n:]
        return ""

    def push(self, action):  # type: ignore[no-untyped-def]
        """Run ``action(pusher)`` with a connected :class:`Pusher` and return its result."""
        pusher = Pusher(self.url, self.tokens.mint)
        try:
            return action(pusher)
        finally:
            pusher.close()

    def push_many(self, repo: str, count: int) -> list[Pushed]:
        """Push ``count`` schema1 tags into ``repo``."""
        return self.push(lambda p: push_many(p, repo, count))

    def stop(self) -> None:
        """Stop the registry (TERM, then KILL after 5 s) and the token service; remove files."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.tokens.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Harness":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(**kw) -> Iterator[Harness]:  # type: ignore[no-untyped-def]
    """Context manager form of :meth:`Harness.start`."""
    h = Harness.start(**kw)
    try:
        yield h
    finally:
        h.stop()
