"""Push test images into the harness registry (blobs, signed schema1, schema2, a manifest list).

Every expected digest is computed here from the bytes pushed, never from mfkit output.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from fixtures.signer import Signer, build_payload, ec_key, key_id, sign

__all__ = ["Pushed", "Pusher", "seed_images", "push_many", "SCHEMA2", "LIST", "PRETTYJWS", "CONFIG"]

PRETTYJWS = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
SIGN_TIME = "2018-09-03T09:51:54Z"


def sha256(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Pushed:
    """What was pushed at one tag, with digests computed from the pushed bytes."""

    repo: str
    tag: str
    media_type: str
    body: bytes
    digest: str  # payload digest for schema1, body digest otherwise
    signer_kids: list[str] = field(default_factory=list)
    config_digest: str | None = None
    children: list[str] = field(default_factory=list)


class Pusher:
    """Pushes with a bearer token minted for ``repository:NAME:pull,push``."""

    def __init__(self, base_url: str, mint: Callable[[str, list[dict[str, Any]]], str]) -> None:
        self.base = base_url.rstrip("/")
        self.mint = mint
        self.client = httpx.Client(timeout=30.0)
        self._tokens: dict[str, str] = {}
        self._blobs: set[tuple[str, str]] = set()

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    def _auth(self, repo: str) -> dict[str, str]:
        if repo not in self._tokens:
            self._tokens[repo] = self.mint("pusher", [{"type": "repository", "name": repo,
                                                       "actions": ["pull", "push"]}])
        return {"Authorization": f"Bearer {self._tokens[repo]}"}

    def blob(self, repo: str, data: bytes) -> str:
        """Monolithic upload (POST then PUT ?digest=); returns the digest."""
        digest = sha256(data)
        if (repo, digest) in self._blobs:
            return digest
        r = self.client.post(f"{self.base}/v2/{repo}/blobs/uploads/", headers=self._auth(repo))
        if r.status_code != 202:
            raise RuntimeError(f"blob upload start for {repo}: HTTP {r.status_code} {r.text[:200]}")
        location = str(httpx.URL(self.base).join(r.headers["Location"]))
        location += ("&" if "?" in location else "?") + "digest=" + digest
        r = self.client.put(location, content=data,
                            headers={**self._auth(repo), "Content-Type": "application/octet-stream"})
        if r.status_code != 201:
            raise RuntimeError(f"blob upload for {repo}: HTTP {r.status_code} {r.text[:200]}")
        self._blobs.add((repo, digest))
        return digest

    def manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> None:
        """PUT a manifest at a tag or digest."""
        r = self.client.put(f"{self.base}/v2/{repo}/manifests/{ref}", content=body,
                            headers={**self._auth(repo), "Content-Type": media_type})
        if r.status_code != 201:
            raise RuntimeError(f"manifest {repo}:{ref}: HTTP {r.status_code} {r.text[:300]}")

    # --- image builders ---

    def schema1(self, repo: str, tag: str, signers: list[Signer], n_layers: int = 2) -> Pushed:
        """Push blobs and a signed schema1 manifest; digest = sha256(payload) (spec §4)."""
        layers = []
        for i in range(n_layers):
            blob = self.blob(repo, f"schema1 layer {i} of {repo}\n".encode())
            layers.append((blob, f"/bin/sh -c #(nop) step {i} & <b>"))
        payload = build_payload(repo, tag, layers, config={"config": {"Env": ["A=1"]}, "docker_version": "1.9.1"})
        body = sign(payload, signers, SIGN_TIME)
        self.manifest(repo, tag, body, PRETTYJWS)
        return Pushed(repo, tag, PRETTYJWS, body, sha256(payload),
                      signer_kids=sorted(key_id(s.private_key.public_key()) for s in signers))

    def schema2(self, repo: str, tag: str | None, arch: str = "amd64", variant: str | None = None,
                label: str = "") -> Pushed:
        """Push a config, two layers and a schema2 manifest (by tag, or by digest if tag is None)."""
        layers = [f"schema2 layer {i} {arch} {label}\n".encode() for i in range(2)]
        diff_ids = [sha256(b"uncompressed " + data) for data in layers]
        config: dict[str, Any] = {
            "architecture": arch, "os": "linux", "created": "2016-05-24T04:16:49.228757773Z",
            "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["nginx", "-g", "daemon off;"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [
                {"created": "2016-05-23T22:57:20Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in /"},
                {"created": "2016-05-23T22:57:23Z", "created_by": "/bin/sh -c #(nop) CMD [\"bash\"]",
                 "empty_layer": True},
                {"created": "2016-05-24T04:16:49Z", "created_by": f"/bin/sh -c apt-get install {label}"},
            ],
        }
        if variant:
            config["variant"] = variant
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        config_digest = self.blob(repo, config_bytes)
        descs = [{"mediaType": LAYER, "size": len(d), "digest": self.blob(repo, d)} for d in layers]
        manifest = {"schemaVersion": 2, "mediaType": SCHEMA2,
                    "config": {"mediaType": CONFIG, "size": len(config_bytes), "digest": config_digest},
                    "layers": descs}
        body = json.dumps(manifest, indent=3).encode()
        digest = sha256(body)
        self.manifest(repo, tag or digest, body, SCHEMA2)
        return Pushed(repo, tag or digest, SCHEMA2, body, digest, config_digest=config_digest)

    def manifest_list(self, repo: str, tag: str, children: list[tuple[Pushed, dict[str, str]]]) -> Pushed:
        """Push a Docker manifest list over already pushed children."""
        doc = {"schemaVersion": 2, "mediaType": LIST, "manifests": [
            {"mediaType": c.media_type, "size": len(c.body), "digest": c.digest, "platform": p}
            for c, p in children]}
        body = json.dumps(doc, indent=3).encode()
        self.manifest(repo, tag, body, LIST)
        return Pushed(repo, tag, LIST, body, sha256(body), children=[c.digest for c, _ in children])


def _x5c_chain() -> tuple[rsa.RSAPrivateKey, list[bytes]]:
    """A root -> leaf chain (test-only RSA keys made per run); returns the leaf key and DER chain."""
    now = dt.datetime.now(dt.timezone.utc)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mfkit test root")])
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mfkit test leaf")])
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(leaf_name).issuer_name(root_name)
            .public_key(leaf_key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .sign(root_key, hashes.SHA256()))
    return leaf_key, [leaf.public_bytes(Encoding.DER), root.public_bytes(Encoding.DER)]


def seed_images(pusher: Pusher, rsa_key: rsa.RSAPrivateKey) -> dict[tuple[str, str], Pushed]:
    """Push the fixture set; returns ``{(repo, tag): Pushed}``."""
    out: dict[tuple[str, str], Pushed] = {}

    def keep(p: Pushed) -> Pushed:
        out[(p.repo, p.tag)] = p
        return p

    s1 = "mfkit/schema1"
    keep(pusher.schema1(s1, "es256", [Signer(ec_key(1, "P-256"))]))
    keep(pusher.schema1(s1, "es384", [Signer(ec_key(2, "P-384"))]))
    keep(pusher.schema1(s1, "es512", [Signer(ec_key(3, "P-521"))]))
    keep(pusher.schema1(s1, "rs256", [Signer(rsa_key)]))
    keep(pusher.schema1(s1, "multi", [Signer(ec_key(4, "P-384")), Signer(rsa_key)]))
    leaf_key, chain = _x5c_chain()
    keep(pusher.schema1(s1, "x5c", [Signer(leaf_key, x5c=chain)]))
    nginx = "k8s/nginx"
    keep(pusher.schema2(nginx, "1.9", label="1.9"))
    keep(pusher.schema2(nginx, "latest", label="latest"))
    keep(pusher.schema2(nginx, "x..y_Z-", label="odd"))
    keep(pusher.schema2(nginx, "_..", label="odd2"))
    amd = pusher.schema2("mfkit/multiarch", None, "amd64", label="amd")
    arm = pusher.schema2("mfkit/multiarch", None, "arm64", "v8", label="arm")
    keep(amd)
    keep(arm)
    keep(pusher.manifest_list("mfkit/multiarch", "latest", [
        (amd, {"architecture": "amd64", "os": "linux"}),
        (arm, {"architecture": "arm64", "os": "linux", "variant": "v8"})]))
    return out


def push_many(pusher: Pusher, repo: str, count: int) -> list[Pushed]:
    """Push ``count`` small signed schema1 tags ``t000``... to ``repo`` (benchmarks)."""
    key = ec_key(7, "P-256")
    return [pusher.schema1(repo, f"t{i:03d}", [Signer(key)], n_layers=1) for i in range(count)]
