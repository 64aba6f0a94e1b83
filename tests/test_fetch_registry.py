"""`mfkit fetch` against a real docker-registry (distribution 2.8.2) with Harbor-style token auth.

Runs the CLI the way a user would (``python -m mfkit fetch ...`` with the password on
stdin), then checks the capture files and ``mfkit analyze --json``. Expected digests and
key ids come from the harness (computed from what it pushed and the keys it generated),
never from mfkit output.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mfkit.remote import Registry
from tests.registry.harness import Harness

pytestmark = pytest.mark.registry

ROOT = Path(__file__).resolve().parent.parent
PRETTYJWS = "application/vnd.docker.distribution.manifest.v1+prettyjws"
TRANSCRIPTS: list[str] = []  # every stdout/stderr seen, for the secrets test
OUTPUTS: list[Path] = []  # every capture folder written, for the secrets test


@dataclass
class Run:
    rc: int
    out: str
    err: str
    dir: Path


def mfkit(*args: str, stdin: str | None = None, out: Path | None = None) -> Run:
    """Run ``python -m mfkit`` and record its output."""
    cmd = [sys.executable, "-m", "mfkit", *args]
    if out is not None:
        cmd += ["-o", str(out)]
        OUTPUTS.append(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, input=stdin if stdin is not None else "", capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)
    TRANSCRIPTS.extend([proc.stdout, proc.stderr])
    assert "Traceback" not in proc.stderr, proc.stderr
    return Run(proc.returncode, proc.stdout, proc.stderr, out or Path("."))


def fetch(reg: Harness, out: Path, *args: str, password: str | None = None) -> Run:
    """``mfkit fetch`` with the harness credentials (password on stdin)."""
    pw = reg.password if password is None else password
    return mfkit("fetch", "-u", reg.username, "--password-stdin", *args, stdin=pw + "\n", out=out)


def analyze(path: Path) -> list[dict]:
    """``mfkit analyze PATH --json`` records (one JSON object per line)."""
    run = mfkit("analyze", str(path), "--json")
    assert run.rc in (0, 1), run.err
    return [json.loads(line) for line in run.out.splitlines() if line.strip()]


def sidecars(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.meta.json"))]


def folder(out: Path, reg: Harness, repo: str, kind: str, ref: str | None = None) -> Path:
    from mfkit.capture import capture_dir

    return capture_dir(out, reg.host, repo, kind, ref)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("captures")


@pytest.fixture(scope="module")
def all_tags(registry: Harness, base: Path) -> Run:
    """One run: every tag of the schema1 repository and of the schema2 repository."""
    run = fetch(registry, base / "all", "--all-tags", f"{registry.host}/mfkit/schema1", f"{registry.host}/k8s/nginx")
    assert run.rc == 0, run.out + run.err
    return run


@pytest.fixture(scope="module")
def all_tags_analysis(all_tags: Run) -> dict[str, dict]:
    return {rec["source"]: rec for rec in analyze(all_tags.dir)}


def _records_for(analysis: dict[str, dict], folder_path: Path) -> list[dict]:
    return [rec for src, rec in analysis.items() if Path(src).parent == folder_path]


# --- schema1 pushed with several key types ---

SCHEMA1_TAGS = ["es256", "es384", "es512", "rs256", "multi", "x5c"]


@pytest.mark.parametrize("tag", SCHEMA1_TAGS)
def test_schema1_digest_and_registry_signature(registry: Harness, all_tags: Run, all_tags_analysis: dict,
                                               tag: str) -> None:
    pushed = registry.images[("mfkit/schema1", tag)]
    where = folder(all_tags.dir, registry, "mfkit/schema1", "manifests", tag)
    [meta] = sidecars(where)
    headers = {k.lower(): v for k, v in meta["headers"]}
    assert meta["kind"] == "manifests" and meta["status"] == 200
    assert meta["request"]["method"] == "GET"
    assert meta["request"]["url"] == f"{registry.url}/v2/mfkit/schema1/manifests/{tag}"
    assert PRETTYJWS in meta["request"]["accept"]
    assert headers["docker-content-digest"] == pushed.digest
    assert meta["reference"] == f"{registry.host}/mfkit/schema1:{tag}"
    assert meta["reference_input"] == f"{registry.host}/mfkit/schema1"
    assert meta["time"].endswith("Z")
    assert meta["grant"]["issuer"] == "harbor-token-issuer"
    assert meta["grant"]["subject"] == "admin"
    assert meta["grant"]["audience"] == "harbor-registry"
    assert meta["grant"]["access"] == [{"type": "repository", "name": "mfkit/schema1", "actions": ["pull"]}]
    assert meta["grant"]["key_id"] == registry.tokens.kid
    body = (where / meta["body"]["file"]).read_bytes()
    assert hashlib.sha256(body).hexdigest() == meta["body"]["sha256"]

    [rec] = _records_for(all_tags_analysis, where)
    assert rec["kind"] == "schema1-signed"
    assert rec["digest"] == pushed.digest
    assert rec["digests"]["payload"] == pushed.digest
    assert rec["digests"]["header"] == pushed.digest
    # the registry re-signs on GET: one ES256 signature with its own key (registry-notes.md)
    [sig] = rec["signatures"]
    assert sig["valid"] is True and sig["error"] is None
    assert sig["alg"] == "ES256" and sig["key_source"] == "jwk"
    assert sig["key_id"] == registry.registry_key_id
    assert sig["key_id"] not in pushed.signer_kids
    assert rec["verified"] is True
    assert {"source", "kind", "digest", "digests", "signatures", "verified", "layers", "chain", "findings"} <= set(rec)


def test_tags_list_and_one_token_per_repository(registry: Harness, all_tags: Run) -> None:
    [meta] = sidecars(folder(all_tags.dir, registry, "mfkit/schema1", "tags"))
    assert meta["kind"] == "tags" and meta["status"] == 200
    body = json.loads((folder(all_tags.dir, registry, "mfkit/schema1", "tags") / meta["body"]["file"]).read_bytes())
    assert sorted(body["tags"]) == sorted(SCHEMA1_TAGS)
    for repo in ("mfkit/schema1", "k8s/nginx"):
        tokens = sidecars(folder(all_tags.dir, registry, repo, "token"))
        assert len(tokens) == 1, repo  # one token per repository, reused for every tag
        [tok] = tokens
        assert tok["redacted"] == ["token"]
        assert tok["request"]["url"].startswith(registry.tokens.realm + "?")
        saved = json.loads((folder(all_tags.dir, registry, repo, "token") / tok["body"]["file"]).read_bytes())
        assert set(saved) == {"expires_in", "issued_at"}
        assert tok["grant"]["requested_scopes"] == [f"repository:{repo}:pull"]


def test_token_requests_are_harbor_shaped(registry: Harness, all_tags: Run) -> None:
    mine = [r for r in registry.tokens.requests if r["user"] == "admin"]
    assert mine
    for req in mine:
        assert req["had_basic"]
        assert req["params"]["account"] == ["admin"]
        assert req["params"]["service"] == ["harbor-registry"]
        assert len(req["params"]["scope"]) == 1


def test_schema2_config_blob_and_odd_tags(registry: Harness, all_tags: Run, all_tags_analysis: dict) -> None:
    for tag in ("1.9", "latest", "x..y_Z-", "_.."):
        pushed = registry.images[("k8s/nginx", tag)]
        where = folder(all_tags.dir, registry, "k8s/nginx", "manifests", tag)
        assert where.resolve().is_relative_to(all_tags.dir.resolve())
        assert where.name not in (".", "..") and where.parent.name == "manifests"
        [meta] = sidecars(where)
        body = (where / meta["body"]["file"]).read_bytes()
        assert body == pushed.body  # schema2 comes back byte-identical
        [rec] = _records_for(all_tags_analysis, where)
        assert rec["kind"] == "schema2" and rec["digest"] == pushed.digest
        cfg_dir = folder(all_tags.dir, registry, "k8s/nginx", "blobs", pushed.config_digest)
        [cfg] = sidecars(cfg_dir)
        assert "sha256:" + cfg["body"]["sha256"] == pushed.config_digest
        assert cfg["kind"] == "blobs"


def test_accept_schema1_converts_schema2(registry: Harness, base: Path) -> None:
    out = base / "converted"
    run = fetch(registry, out, "--accept", "schema1", f"{registry.host}/k8s/nginx:1.9")
    assert run.rc == 0, run.out + run.err
    where = folder(out, registry, "k8s/nginx", "manifests", "1.9")
    [meta] = sidecars(where)
    assert meta["request"]["accept"] == (f"{PRETTYJWS}, application/vnd.docker.distribution.manifest.v1+json, "
                                         "application/json")
    header = dict((k.lower(), v) for k, v in meta["headers"])["docker-content-digest"]
    assert header != registry.images[("k8s/nginx", "1.9")].digest  # a converted document, not the pushed one
    [rec] = analyze(where)
    assert rec["kind"] == "schema1-signed"
    assert rec["verified"] is True
    assert rec["digest"] == header == rec["digests"]["payload"]
    [sig] = rec["signatures"]
    assert sig["key_id"] == registry.registry_key_id and sig["valid"] is True
    if shutil.which("skopeo"):  # an independent digest implementation
        body_file = where / meta["body"]["file"]
        skopeo = subprocess.run(["skopeo", "manifest-digest", str(body_file)], capture_output=True, text=True,
                                timeout=30)
        assert skopeo.stdout.strip() == header


def test_platforms(registry: Harness, base: Path) -> None:
    lst = registry.images[("mfkit/multiarch", "latest")]
    arm = registry.images[("mfkit/multiarch", lst.children[1])]  # pushed as (amd64, arm64/v8)
    out = base / "one-platform"
    run = fetch(registry, out, "--platform", "linux/arm64/v8", f"{registry.host}/mfkit/multiarch")
    assert run.rc == 0, run.out + run.err
    [meta] = sidecars(folder(out, registry, "mfkit/multiarch", "manifests", "latest"))
    assert meta["body"]["sha256"] == lst.digest.split(":")[1]
    children = [p.name for p in folder(out, registry, "mfkit/multiarch", "manifests").iterdir()]
    assert sorted(children) == sorted(["latest", "sha256%3A" + arm.digest.split(":")[1]])
    assert folder(out, registry, "mfkit/multiarch", "blobs", arm.config_digest).is_dir()

    out = base / "all-platforms"
    run = fetch(registry, out, "--all-platforms", f"{registry.host}/mfkit/multiarch:latest")
    assert run.rc == 0
    assert len(list(folder(out, registry, "mfkit/multiarch", "manifests").iterdir())) == 3

    out = base / "no-platform"
    run = fetch(registry, out, f"{registry.host}/mfkit/multiarch:latest")
    assert run.rc == 0
    assert run.out.count("not followed (use --platform or --all-platforms)") == 2
    assert "2 skipped" in run.out


def test_same_reference_twice_keeps_both_sidecars(registry: Harness, base: Path) -> None:
    out = base / "twice"
    ref = f"{registry.host}/k8s/nginx:latest"
    assert fetch(registry, out, ref).rc == 0
    assert fetch(registry, out, ref).rc == 0
    where = folder(out, registry, "k8s/nginx", "manifests", "latest")
    metas = sidecars(where)
    assert len(metas) == 2
    assert len(list(where.glob("*.body"))) == 1  # identical body stored once
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=where, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert not list(out.rglob(".tmp-*"))


def test_wrong_password(registry: Harness, base: Path) -> None:
    run = fetch(registry, base / "wrong", f"{registry.host}/k8s/nginx:1.9", password="not-the-password")
    assert run.rc == 3
    assert "refused the credentials of user 'admin' (HTTP 401)" in run.out


def test_harbor_empty_grant(registry: Harness, base: Path) -> None:
    registry.tokens.harbor_empty_grant = True
    try:
        run = fetch(registry, base / "empty-grant", f"{registry.host}/k8s/nginx:1.9", password="not-the-password")
    finally:
        registry.tokens.harbor_empty_grant = False
    assert run.rc == 3
    assert ("credentials accepted by the token service but no actions granted for repository:k8s/nginx:pull "
            "— wrong username/password?") in run.out


def test_anonymous_is_refused_clearly(registry: Harness, base: Path) -> None:
    run = mfkit("fetch", f"{registry.host}/k8s/nginx:1.9", out=base / "anon")
    assert run.rc == 3
    assert "anonymous access not granted" in run.out
    anon = [r for r in registry.tokens.requests if r["user"] is None]
    assert anon and all("account" not in r["params"] for r in anon)


def test_connection_refused(base: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = mfkit("fetch", f"127.0.0.1:{port}/k8s/nginx:1.9", out=base / "refused")
    assert run.rc == 3
    assert "cannot connect" in run.out and "Connection refused" in run.out


def test_usage_errors(registry: Harness, base: Path) -> None:
    run = mfkit("fetch", "Not/A/Valid:ref:x", out=base / "usage")
    assert run.rc == 2 and "invalid reference" in run.err
    run = mfkit("fetch", "-u", "admin", f"{registry.host}/k8s/nginx:1.9", out=base / "usage")
    assert run.rc == 2 and "--password-stdin" in run.err
    run = mfkit("fetch", "--all-tags", f"{registry.host}/k8s/nginx:1.9", out=base / "usage")
    assert run.rc == 2
    run = mfkit("fetch", "--accept", "bogus", f"{registry.host}/k8s/nginx:1.9", out=base / "usage")
    assert run.rc == 2 and "unknown name" in run.err
    assert not (base / "usage").exists()


def test_reauth_on_invalid_token(registry: Harness, base: Path) -> None:
    """A revoked/expired token (401 error="invalid_token") is replaced once, in-process."""
    saved = []
    with Registry(registry.host, username=registry.username, password=registry.password,
                  on_token=saved.append) as client:
        first = client.get_manifest("mfkit/schema1", "es256", PRETTYJWS)
        assert first.status == 200 and len(saved) == 1
        for tok in client._tokens.values():  # simulate a token the registry no longer accepts
            tok.value = "invalid." + tok.value.split(".", 1)[1]
        second = client.get_manifest("mfkit/schema1", "es256", PRETTYJWS)
        assert second.status == 200 and len(saved) == 2
        third = client.get_manifest("mfkit/schema1", "es384", PRETTYJWS)
        assert third.status == 200 and len(saved) == 2  # cached again
    assert all(b"token\"" not in ex.body for ex in saved)


def test_no_secret_anywhere(registry: Harness, base: Path) -> None:
    """Run last: the password, the Basic credential and every issued token appear nowhere."""
    assert OUTPUTS and registry.tokens.issued
    basic = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    secrets = [registry.password, basic, *registry.tokens.issued]
    # token signatures and payloads alone would be enough to replay: check each part too
    for tok in registry.tokens.issued:
        secrets.extend(tok.split(".")[1:])
    files = [p for p in base.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for s in secrets:
            assert s.encode() not in data, f"secret found in {path}"
    for text in TRANSCRIPTS:
        for s in secrets:
            assert s not in text
