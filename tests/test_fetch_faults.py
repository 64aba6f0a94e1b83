"""`mfkit fetch` against a misbehaving local registry (tests/faultserver.py).

Faults: 429 with Retry-After, 502/503/504, connection resets, truncated bodies, wrong
digests, tokens expiring mid-run, endless and lying bodies, Link pagination variants,
invalid and duplicate tags, blob redirects to another origin, SSRF realms, TLS with a
private CA, resume and Ctrl-C. Expected digests come from the server (computed from what
it serves), never from mfkit. Backoff is tiny (``retry_base``); nothing asserts on time.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mfkit.capture import capture_dir
from mfkit.errors import PolicyError
from mfkit.fetch import FetchOptions, fetch
from mfkit.remote import Registry, parse_link_header, parse_retry_after, realm_address_problem
from tests.faultserver import FaultServer, Manifest, http_date, make_tls

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "alice", "s3cret-pw"
SECRETS: list[str] = [PASSWORD]
OUTPUTS: list[Path] = []
TEXTS: list[str] = []


def opts(out: Path, **kw) -> FetchOptions:
    OUTPUTS.append(out)
    base = dict(output=out, username=USER, password=PASSWORD, plain_http=True, retry_base=0.002,
                retry_max_wait=0.05, env={})
    base.update(kw)
    return FetchOptions(**base)


def run_cli(*args: str, stdin: str = "", env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "mfkit", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    TEXTS.extend([proc.stdout, proc.stderr])
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def metas(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.meta.json"))]


def manifest_dir(out: Path, srv: FaultServer, repo: str, tag: str) -> Path:
    return capture_dir(out, srv.host, repo, "manifests", tag)


@pytest.fixture
def srv():
    server = FaultServer().start()
    try:
        yield server
    finally:
        SECRETS.extend(server.issued)
        server.stop()


# --- pure helpers ---


def test_link_header_variants() -> None:
    assert parse_link_header('</v2/x/tags/list?last=b&n=2>; rel="next"') == [("/v2/x/tags/list?last=b&n=2", {"next"})]
    assert parse_link_header("<a?x=1,2>;rel=next") == [("a?x=1,2", {"next"})]
    links = parse_link_header(['<p1>; rel="first", <p2>; title="a, b;c"; rel="prev next"', "<p3>; REL=Last"])
    assert links == [("p1", {"first"}), ("p2", {"prev", "next"}), ("p3", {"last"})]
    assert parse_link_header(None) == [] and parse_link_header("garbage") == []


def test_retry_after_forms() -> None:
    assert parse_retry_after("7", now=0) == 7.0
    assert parse_retry_after(None, now=0) is None and parse_retry_after("soon", now=0) is None
    wait = parse_retry_after(http_date(30), now=time.time())
    assert wait is not None and 25 <= wait <= 31
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=time.time()) == 0.0


@pytest.mark.parametrize("realm_host,registry,refused", [
    ("169.254.169.254", "registry.example.test", True),
    ("fe80::1", "registry.example.test", True),
    ("::ffff:169.254.169.254", "registry.example.test", True),
    ("0.0.0.0", "127.0.0.1:5000", True),
    ("metadata.google.internal", "registry.example.test", True),
    ("127.0.0.1", "registry.example.test", True),
    ("127.0.0.1", "127.0.0.1:5000", False),
    ("localhost", "127.0.0.1:5000", False),
    ("10.0.0.5", "registry.example.test", True),
    ("10.0.0.5", "10.0.0.4:5000", False),
    ("auth.docker.io", "registry-1.docker.io", False),
])
def test_realm_address_rules(realm_host: str, registry: str, refused: bool) -> None:
    assert (realm_address_problem(realm_host, registry) is not None) is refused


# --- faults ---


@pytest.mark.parametrize("faults", [["429"], ["502", "503", "504"], ["reset"], ["truncate"], ["wrongdigest"],
                                    ["reset", "truncate", "wrongdigest", "429"]])
def test_fault_is_retried_and_capture_is_good(srv: FaultServer, tmp_path: Path, faults: list[str]) -> None:
    made = srv.add("team/app", ["v1"])
    srv.plan("/v2/team/app/manifests/v1", faults)
    summary = fetch([f"{srv.host}/team/app:v1"], opts(tmp_path))
    assert not summary.failed, summary.failed
    assert summary.retries == len(faults)
    [meta] = metas(manifest_dir(tmp_path, srv, "team/app", "v1"))
    body = (manifest_dir(tmp_path, srv, "team/app", "v1") / meta["body"]["file"]).read_bytes()
    assert body == made["v1"].body
    assert summary.fetched[-1].digest == made["v1"].digest


def test_retry_after_http_date_is_honoured_and_capped(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", ["v1"])
    srv.retry_after = http_date(3600)  # an hour: capped by retry_max_wait
    srv.plan("/v2/team/app/manifests/v1", ["429"])
    summary = fetch([f"{srv.host}/team/app:v1"], opts(tmp_path))
    assert not summary.failed and summary.retries == 1


def test_gives_up_after_bounded_attempts_and_saves_nothing(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", ["v1", "v2"])
    srv.plan("/v2/team/app/manifests/v1", ["truncate"] * 10)
    srv.plan("/v2/team/app/manifests/v2", ["503"] * 10)
    summary = fetch([f"{srv.host}/team/app:v1", f"{srv.host}/team/app:v2"], opts(tmp_path, retries=2))
    by_ref = {f.reference.rsplit(":", 1)[1]: f for f in summary.failed}
    assert by_ref["v1"].code == "fetch.truncated" and "gave up after 3 attempts" in by_ref["v1"].reason
    assert by_ref["v2"].code == "registry.unavailable" and summary.exit_code == 3
    assert not manifest_dir(tmp_path, srv, "team/app", "v1").exists()  # never saved as good
    assert not manifest_dir(tmp_path, srv, "team/app", "v2").exists()
    gets = [r for r in srv.requests if r["path"] == "/v2/team/app/manifests/v1"]
    assert len(gets) == 3


def test_wrong_digest_against_requested_digest(srv: FaultServer, tmp_path: Path) -> None:
    made = srv.add("team/app", ["v1"])
    digest = made["v1"].digest
    srv.plan(f"/v2/team/app/manifests/{digest}", ["wrongdigest"] * 10)
    summary = fetch([f"{srv.host}/team/app@{digest}"], opts(tmp_path, retries=1))
    [failed] = summary.failed
    assert failed.code == "fetch.digest-mismatch" and digest in failed.reason
    assert not list(tmp_path.rglob("manifests/*/*.meta.json"))


def test_token_expiring_mid_run_is_renewed(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", [f"t{i}" for i in range(12)])
    srv.token_uses = 4
    summary = fetch([f"{srv.host}/team/app"], opts(tmp_path, all_tags=True, concurrency=2))
    assert not summary.failed, summary.failed
    assert sum(1 for f in summary.fetched if f.kind == "manifests") == 12
    assert len(srv.issued) >= 3  # renewed more than once


@pytest.mark.parametrize("fault,code", [("endless", "fetch.too-large"), ("lying-big", "fetch.too-large")])
def test_endless_and_lying_bodies_are_capped(srv: FaultServer, tmp_path: Path, fault: str, code: str) -> None:
    srv.add("team/app", ["v1"])
    srv.plan("/v2/team/app/manifests/v1", [fault])
    summary = fetch([f"{srv.host}/team/app:v1"], opts(tmp_path, max_manifest_size=65536))
    [failed] = summary.failed
    assert failed.code == code
    assert not manifest_dir(tmp_path, srv, "team/app", "v1").exists()


def test_short_lying_content_length_reads_only_what_was_announced(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", ["v1"])
    srv.plan("/v2/team/app/manifests/v1", ["lying-small"])
    summary = fetch([f"{srv.host}/team/app:v1"], opts(tmp_path))
    [meta] = metas(manifest_dir(tmp_path, srv, "team/app", "v1"))
    assert meta["body"]["length"] == 100 and not summary.failed


# --- paging ---


@pytest.mark.parametrize("mode", ["relative", "absolute", "unquoted", "multi", "opaque"])
def test_link_pagination_variants(srv: FaultServer, tmp_path: Path, mode: str) -> None:
    tags = [f"t{i:02d}" for i in range(7)]
    srv.add("team/app", tags)
    srv.page_size, srv.link_mode = 3, mode
    summary = fetch([f"{srv.host}/team/app"], opts(tmp_path, all_tags=True))
    assert not summary.failed and not summary.warnings, (summary.failed, summary.warnings)
    assert sorted(f.reference.rsplit(":", 1)[1] for f in summary.fetched if f.kind == "manifests") == tags
    assert sum(1 for f in summary.fetched if f.kind == "tags") == 3


@pytest.mark.parametrize("mode,needle", [("loop", "pages loop"), ("cross-host", "another scheme or host"),
                                         ("cross-scheme", "another scheme or host")])
def test_link_pagination_guards(srv: FaultServer, tmp_path: Path, mode: str, needle: str) -> None:
    srv.add("team/app", [f"t{i:02d}" for i in range(7)])
    srv.page_size, srv.link_mode = 3, mode
    summary = fetch([f"{srv.host}/team/app"], opts(tmp_path, all_tags=True))
    assert any(needle in w for w in summary.warnings), summary.warnings
    pages = [r for r in srv.requests if r["path"].startswith("/v2/team/app/tags/list")]
    assert len(pages) <= 2  # stopped, not looping
    assert not summary.failed


def test_max_pages(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", [f"t{i}" for i in range(5)])
    srv.page_size = 1
    summary = fetch([f"{srv.host}/team/app"], opts(tmp_path, all_tags=True, max_pages=2))
    assert any("more than 2 pages" in w for w in summary.warnings)
    assert sum(1 for f in summary.fetched if f.kind == "manifests") == 2


def test_invalid_and_duplicate_tags(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", ["ok", "-bad", "x" * 129])
    srv.tag_list["team/app"] = ["ok", "ok", "-bad", "x" * 129]
    summary = fetch([f"{srv.host}/team/app"], opts(tmp_path, all_tags=True))
    assert any("'ok' listed more than once" in w for w in summary.warnings)
    assert sum(1 for w in summary.warnings if "breaks the tag grammar" in w) == 2
    assert {r.rsplit(":", 1)[1] for r, _ in summary.skipped} == {"-bad", "x" * 129}
    assert [f.reference for f in summary.fetched if f.kind == "manifests"] == [f"{srv.host}/team/app:ok"]
    forced = fetch([f"{srv.host}/team/app"], opts(tmp_path / "forced", all_tags=True, force=True))
    assert not forced.failed
    assert sum(1 for f in forced.fetched if f.kind == "manifests") == 3
    assert manifest_dir(tmp_path / "forced", srv, "team/app", "-bad").is_dir()


def test_catalog_with_all_tags(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("a/one", ["1", "2"])
    srv.add("b/two", ["3"])
    srv.page_size = 1
    summary = fetch([srv.host], opts(tmp_path, catalog=True, all_tags=True))
    assert not summary.failed
    assert sum(1 for f in summary.fetched if f.kind == "catalog") == 2
    assert sorted(f.reference for f in summary.fetched if f.kind == "manifests") == [
        f"{srv.host}/a/one:1", f"{srv.host}/a/one:2", f"{srv.host}/b/two:3"]
    assert len(metas(capture_dir(tmp_path, srv.host, None, "catalog", None))) == 2


# --- guards ---


def test_blob_redirect_to_another_port_gets_no_credentials(srv: FaultServer, tmp_path: Path) -> None:
    cfg_digest = _schema2(srv)
    summary = fetch([f"{srv.host}/team/s2:v1"], opts(tmp_path))
    assert not summary.failed, summary.failed
    [blob_req] = srv.blob_requests
    assert blob_req["authorization"] is None  # CVE-2020-15157
    assert any(r["path"].startswith("/v2/team/s2/blobs/") and (r["authorization"] or "").startswith("Bearer ")
               for r in srv.requests)
    [meta] = metas(capture_dir(tmp_path, srv.host, "team/s2", "blobs", cfg_digest))
    assert meta["redirects"] == [f"http://127.0.0.1:{srv.blob_port}/storage/{cfg_digest}"]


def test_localhost_is_another_origin_than_127(srv: FaultServer) -> None:
    srv.add("team/app", ["v1"])
    with Registry(srv.host, username=USER, password=PASSWORD, plain_http=True) as reg:
        reg.ping()
        home = reg.base
    assert home.startswith("http://127.0.0.1:")
    from mfkit.remote import _origin
    import httpx

    assert _origin(httpx.URL(f"http://localhost:{srv.port}/x")) != _origin(httpx.URL(home))


@pytest.mark.parametrize("realm", ["http://169.254.169.254/token", "http://0.0.0.0/token", "http://[fe80::1]/token"])
def test_ssrf_realm_is_refused(srv: FaultServer, tmp_path: Path, realm: str) -> None:
    srv.add("team/app", ["v1"])
    srv.realm = realm
    summary = fetch([f"{srv.host}/team/app:v1"], opts(tmp_path))
    [failed] = summary.failed
    assert failed.code == "policy.realm-ssrf"
    with pytest.raises(PolicyError):
        Registry(srv.host, plain_http=True).ping()


def test_tls_private_ca(tmp_path: Path) -> None:
    ctx, ca = make_tls(tmp_path)
    server = FaultServer(tls=ctx).start()
    try:
        server.add("team/app", ["v1"])
        ref = f"{server.host}/team/app:v1"
        base = dict(plain_http=False, retries=0)
        bad = fetch([ref], opts(tmp_path / "no-ca", **base))
        assert [f.code for f in bad.failed] == ["fetch.tls"]
        good = fetch([ref], opts(tmp_path / "ca", ca_file=ca, **base))
        assert not good.failed, good.failed
        assert not fetch([ref], opts(tmp_path / "insecure", insecure=True, **base)).failed
    finally:
        SECRETS.extend(server.issued)
        server.stop()


# --- resume ---


def test_resume_skips_tags_already_captured(srv: FaultServer, tmp_path: Path) -> None:
    tags = [f"t{i}" for i in range(8)]
    srv.add("team/app", tags)
    srv.tag_list["team/app"] = tags[:5]  # the first run sees (or finished) only five tags
    first = fetch([f"{srv.host}/team/app"], opts(tmp_path, all_tags=True))
    assert not first.failed
    srv.tag_list["team/app"] = tags
    srv.repos["team/app"]["t0"] = srv.add("other/x", ["t0"])["t0"]  # t0 moved since
    srv.requests.clear()
    second = fetch([f"{srv.host}/team/app"], opts(tmp_path, all_tags=True))
    assert not second.failed
    assert sorted(r.rsplit(":", 1)[1] for r, why in second.skipped if "already captured" in why) == tags[1:5]
    fetched = sorted(f.reference.rsplit(":", 1)[1] for f in second.fetched if f.kind == "manifests")
    assert fetched == ["t0", "t5", "t6", "t7"]
    heads = [r for r in srv.requests if r["method"] == "HEAD"]
    assert len(heads) == 5
    for t in tags:
        assert len(metas(manifest_dir(tmp_path, srv, "team/app", t))) == (2 if t == "t0" else 1)
    again = fetch([f"{srv.host}/team/app"], opts(tmp_path, all_tags=True, refetch=True))
    assert not again.skipped and sum(1 for f in again.fetched if f.kind == "manifests") == 8


# --- the CLI ---


def test_cli_refuses_password_on_command_line(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", ["v1"])
    proc = run_cli("fetch", "--creds", f"{USER}:{PASSWORD}", "--plain-http", "-o", str(tmp_path / "x"),
                   f"{srv.host}/team/app:v1")
    assert proc.returncode == 2 and "--password-stdin" in proc.stderr
    assert PASSWORD not in proc.stderr + proc.stdout
    proc = run_cli("fetch", "--creds", USER, "--password-stdin", "--plain-http", "-o", str(tmp_path / "y"),
                   f"{srv.host}/team/app:v1", stdin=PASSWORD + "\n", env={"HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "credentials: from -u/--password-stdin for" in proc.stdout


def test_cli_ctrl_c_exits_130_and_leaves_no_partial_file(tmp_path: Path) -> None:
    server = FaultServer(slow=0.02).start()
    try:
        server.add("team/app", [f"t{i:02d}" for i in range(40)])
        out = tmp_path / "out"
        proc = subprocess.Popen(
            [sys.executable, "-m", "mfkit", "fetch", "--creds", USER, "--password-stdin", "--plain-http",
             "--all-tags", "-j", "2", "-o", str(out), f"{server.host}/team/app"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
        assert proc.stdin is not None
        proc.stdin.write(PASSWORD.encode() + b"\n")
        proc.stdin.close()
        proc.stdin = None  # communicate() below must not touch it
        for _ in range(600):  # until the first manifest is saved (bounded)
            if list(out.rglob("manifests/*/*.meta.json")) or proc.poll() is not None:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
        TEXTS.extend([stdout.decode(), stderr.decode()])
        assert proc.returncode == 130, stderr.decode()
        assert b"Traceback" not in stderr and b"Aborted" not in stderr
        assert b"interrupted" in stderr
        assert not list(out.rglob(".tmp-*"))
        for meta in out.rglob("*.meta.json"):
            record = json.loads(meta.read_text())
            body = (meta.parent / record["body"]["file"]).read_bytes()
            assert hashlib.sha256(body).hexdigest() == record["body"]["sha256"]
        saved = len(list(out.rglob("manifests/*/*.meta.json")))
        assert 0 < saved < 40
    finally:
        SECRETS.extend(server.issued)
        server.stop()


def test_500_tags_with_faults_every_tag_once_and_verified(tmp_path: Path) -> None:
    """The issue's Done-when: 429s, resets and truncated bodies; every tag exactly once, all verified."""
    server = FaultServer(chaos=(2024, 0.35)).start()
    try:
        tags = [f"r{i:03d}" for i in range(500)]
        made = server.add("big/repo", tags)
        server.page_size = 100
        out = tmp_path / "out"
        OUTPUTS.append(out)
        proc = run_cli("fetch", "--creds", USER, "--password-stdin", "--plain-http", "--all-tags", "-j", "4",
                       "--retries", "6", "--retry-base", "0.002", "--retry-max-wait", "0.05", "--json",
                       "-o", str(out), f"{server.host}/big/repo", stdin=PASSWORD + "\n",
                       env={"HOME": str(tmp_path)}, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        summary = json.loads(proc.stdout)
        assert summary["counts"]["manifests"] == 500 and summary["counts"]["failed"] == 0
        faults = sum(1 for r in server.requests if r["path"].startswith("/v2/big/repo/manifests/")) - 500
        assert summary["counts"]["retries"] >= faults > 50  # faults were injected and each retried
        for t in tags:
            assert len(metas(capture_dir(out, server.host, "big/repo", "manifests", t))) == 1, t
        analysis = run_cli("analyze", str(out / capture_dir(Path(""), server.host, "big/repo", "manifests", None)),
                           "--json", timeout=300)
        records = [json.loads(line) for line in analysis.stdout.splitlines() if line.strip()]
        assert len(records) == 500
        by_digest = {m.digest for m in made.values()}
        assert all(r["verified"] is True for r in records)
        assert {r["digest"] for r in records} == by_digest
    finally:
        SECRETS.extend(server.issued)
        server.stop()


def test_no_secret_anywhere_zz() -> None:
    """Run last in this file: passwords and tokens are in no output and no saved file."""
    assert SECRETS and OUTPUTS
    blobs = [t.encode() for t in TEXTS]
    for out in OUTPUTS:
        if out.exists():
            blobs += [p.read_bytes() for p in out.rglob("*") if p.is_file()]
    for secret in set(SECRETS):
        needle = secret.encode()
        assert not any(needle in b for b in blobs), "a secret leaked"


# --- defects found in a new-user trial: fetch messages ---


def test_cli_fetch_names_reference_once_and_prints_summary_once(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", ["v1"])
    good, bad = f"{srv.host}/team/app:v1", f"{srv.host}/team/app:nope"
    proc = run_cli("fetch", "-u", USER, "--password-stdin", "--plain-http", "-o", str(tmp_path / "o"), good, bad,
                   stdin=PASSWORD + "\n", env={"HOME": str(tmp_path)})
    assert proc.returncode == 3
    assert f"credentials: from -u/--password-stdin for {srv.host}" in proc.stdout
    [failed] = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    assert failed.count(bad) == 1 and "MANIFEST_UNKNOWN" in failed
    # stderr: progress only; what the summary lists is not printed twice
    assert "MANIFEST_UNKNOWN" not in proc.stderr and "sha256:" not in proc.stderr
    assert f"failed {bad}" in proc.stderr and f"fetched {good}" in proc.stderr
    assert "1 manifest," in proc.stdout and "1 token answer " in proc.stdout
    proc = run_cli("fetch", "--json", "-u", USER, "--password-stdin", "--plain-http", "-o", str(tmp_path / "j"),
                   bad, stdin=PASSWORD + "\n", env={"HOME": str(tmp_path)})
    summary = json.loads(proc.stdout)
    assert summary["failed"][0]["reason"].startswith("MANIFEST_UNKNOWN")
    assert proc.stderr.count(bad) == 1  # with --json, stderr is the human-readable account, once


def test_cli_fetch_usage_hint_mentions_u_first(tmp_path: Path) -> None:
    proc = run_cli("fetch", "--password-stdin", "--plain-http", "-o", str(tmp_path / "x"), "127.0.0.1:9/a:b")
    assert proc.returncode == 2 and "needs -u USER" in proc.stderr


# --- trial defects (regressions) ---

import socket as _socket  # noqa: E402

import httpx  # noqa: E402

from mfkit.errors import FetchError  # noqa: E402
from mfkit.remote import address_problem, normalize_host, shown  # noqa: E402

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
NUMERIC_METADATA = ["2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "169.254.169.254.", "0"]
NUMERIC_LOOPBACK = ["127.1", "0x7f.1"]


@pytest.fixture
def no_outside_connection(monkeypatch):
    """Fail (record) any attempt to resolve or connect to a non-loopback host in this process."""
    attempts: list[object] = []
    real_connect, real_resolve = _socket.create_connection, _socket.getaddrinfo

    def connect(address, *args, **kw):
        if str(address[0]) not in LOOPBACK:
            attempts.append(address)
            raise OSError("test: connection to a non-loopback address refused")
        return real_connect(address, *args, **kw)

    def resolve(host, *args, **kw):
        if str(host) not in LOOPBACK:
            attempts.append(host)
            raise _socket.gaierror("test: resolution of a non-loopback name refused")
        return real_resolve(host, *args, **kw)

    monkeypatch.setattr(_socket, "create_connection", connect)
    monkeypatch.setattr(_socket, "getaddrinfo", resolve)
    yield attempts
    assert not attempts, f"a connection to a non-loopback address was attempted: {attempts}"


@pytest.mark.parametrize("host", NUMERIC_METADATA + NUMERIC_LOOPBACK)
def test_ssrf_numeric_ipv4_forms_are_normalised(host: str) -> None:
    assert normalize_host(host) in ("169.254.169.254", "0.0.0.0", "127.0.0.1")
    assert address_problem(host, "registry.example.test") is not None
    assert realm_address_problem(host, "registry.example.test") is not None
    assert normalize_host("cafe.example.") == "cafe.example" and normalize_host("deadbeef") == "deadbeef"


def _mock_registry(realm: str | None = None, location: str | None = None) -> tuple[Registry, list[str]]:
    """A 'public' registry served by httpx.MockTransport: no socket is ever opened."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host != "registry.example.test":
            return httpx.Response(500)
        if request.url.path == "/v2/":
            if realm:
                return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'})
            return httpx.Response(200, json={})
        if "/blobs/" in request.url.path and location:
            return httpx.Response(307, headers={"Location": location})
        return httpx.Response(404)

    reg = Registry("registry.example.test", transport=httpx.MockTransport(handler),
                   retry=__import__("mfkit.remote", fromlist=["RetryPolicy"]).RetryPolicy(retries=0))
    return reg, seen


@pytest.mark.parametrize("host", NUMERIC_METADATA + NUMERIC_LOOPBACK)
def test_ssrf_numeric_realm_forms_refused_before_any_connection(host: str, no_outside_connection) -> None:
    reg, seen = _mock_registry(realm=f"https://{host}/token")
    with reg, pytest.raises(PolicyError):
        reg.get_manifest("team/app", "v1", "application/json")
    assert set(seen) == {"registry.example.test"}


@pytest.mark.parametrize("host", NUMERIC_METADATA + NUMERIC_LOOPBACK + ["169.254.169.254", "10.0.0.1"])
def test_ssrf_blob_redirect_forms_refused_before_any_connection(host: str, no_outside_connection) -> None:
    reg, seen = _mock_registry(location=f"https://{host}/storage/x")
    with reg, pytest.raises(PolicyError) as info:
        reg.get_blob("team/app", "sha256:" + "a" * 64)
    assert info.value.code in ("policy.redirect-ssrf", "policy.redirect")
    assert set(seen) == {"registry.example.test"}


@pytest.mark.parametrize("host", NUMERIC_METADATA)
def test_ssrf_numeric_realm_forms_refused_by_fetch(srv: FaultServer, tmp_path: Path, host: str,
                                                    no_outside_connection) -> None:
    srv.add("team/app", ["v1"])
    srv.realm = f"http://{host}/token"
    summary = fetch([f"{srv.host}/team/app:v1"], opts(tmp_path))
    [failed] = summary.failed
    assert failed.code.startswith("policy.realm"), failed


@pytest.mark.parametrize("host", NUMERIC_METADATA)
def test_ssrf_blob_redirect_refused_by_fetch(srv: FaultServer, tmp_path: Path, host: str,
                                             no_outside_connection) -> None:
    _schema2(srv)
    srv.blob_location = f"http://{host}/storage/{{digest}}"
    summary = fetch([f"{srv.host}/team/s2:v1"], opts(tmp_path))
    [failed] = summary.failed
    assert failed.code in ("policy.redirect-ssrf", "policy.redirect"), failed
    assert not srv.blob_requests


def _schema2(srv: FaultServer) -> str:
    config = b'{"architecture":"amd64","os":"linux"}'
    cfg_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    srv.blobs[cfg_digest] = config
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                       "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                  "size": len(config), "digest": cfg_digest}, "layers": []}).encode()
    srv.repos["team/s2"] = {"v1": Manifest(body, "sha256:" + hashlib.sha256(body).hexdigest(),
                                           "application/vnd.docker.distribution.manifest.v2+json")}
    return cfg_digest


@pytest.mark.parametrize("fault", ["slow-headers", "slow-body"])
def test_slow_registry_ends_with_timeout_within_the_deadline(srv: FaultServer, tmp_path: Path, fault: str) -> None:
    srv.add("team/app", ["v1"])
    srv.plan("/v2/team/app/manifests/v1", [fault])
    proc = run_cli("fetch", "--creds", USER, "--password-stdin", "--plain-http", "--timeout", "2", "--retries", "0",
                   "-o", str(tmp_path / "o"), f"{srv.host}/team/app:v1", stdin=PASSWORD + "\n",
                   env={"HOME": str(tmp_path)}, timeout=60)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "timed out" in proc.stdout and "total time budget" in proc.stdout


def test_sigint_during_slow_headers_exits_130_promptly(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", ["v1"])
    srv.plan("/v2/team/app/manifests/v1", ["slow-headers"])
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mfkit", "fetch", "--creds", USER, "--password-stdin", "--plain-http",
         "--retries", "0", "-o", str(out), f"{srv.host}/team/app:v1"],  # default timeouts: budget 150 s
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
    assert proc.stdin is not None
    proc.stdin.write(PASSWORD.encode() + b"\n")
    proc.stdin.close()
    proc.stdin = None
    for _ in range(600):  # until the slow manifest GET is under way (bounded)
        if any(r["path"] == "/v2/team/app/manifests/v1" and r["method"] == "GET" for r in srv.requests) \
                or proc.poll() is not None:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=60)  # the failure condition: not a timing assertion
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    TEXTS.extend([stdout.decode(), stderr.decode()])
    assert proc.returncode == 130, stderr.decode()
    assert b"Traceback" not in stderr
    assert not list(out.rglob(".tmp-*"))


HOSTILE_CODE = "\x1b]0;pwned\x07DENIED\u202e"
HOSTILE_MESSAGE = "m\n\rFAKE: fetched ok " + "Z" * 500000


def _assert_safe(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "\r" not in text
    assert not any(line.startswith("FAKE") for line in text.splitlines())
    assert "Z" * 400 not in text


def test_registry_error_text_is_escaped_and_capped(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", ["v1"])
    srv.error_answer = (403, HOSTILE_CODE, HOSTILE_MESSAGE)
    for extra in ([], ["--json"]):
        proc = run_cli("fetch", "--creds", USER, "--password-stdin", "--plain-http", *extra,
                       "-o", str(tmp_path / f"o{len(extra)}"), f"{srv.host}/team/app:v1", stdin=PASSWORD + "\n",
                       env={"HOME": str(tmp_path)})
        assert proc.returncode == 3
        _assert_safe(proc.stdout)
        _assert_safe(proc.stderr)
        assert len(proc.stdout) < 20000 and len(proc.stderr) < 20000
        assert "bytes more" in proc.stdout
        if extra:
            [failed] = json.loads(proc.stdout)["failed"]
            assert set(failed["code"]) <= set("abcdefghijklmnopqrstuvwxyz0123456789.-"), failed["code"]
            _assert_safe(failed["reason"])
    assert shown("a" * 400).endswith("\u2026 (100 bytes more)")


def test_registry_tags_with_control_characters_are_escaped(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", ["v1"])
    srv.tag_list["team/app"] = ["v1", "bad\nFAKE: fetched ok", "x\x1b[2J\u202e", "v1\rFAKE"]
    for extra in ([], ["--force"]):
        proc = run_cli("fetch", "--creds", USER, "--password-stdin", "--plain-http", "--all-tags", "--retries", "0",
                       *extra, "-o", str(tmp_path / f"o{len(extra)}"), f"{srv.host}/team/app",
                       stdin=PASSWORD + "\n", env={"HOME": str(tmp_path)})
        _assert_safe(proc.stdout)
        _assert_safe(proc.stderr)
        assert "\\x0a" in proc.stdout or "\\n" in proc.stdout


def test_unusable_docker_content_digest_is_a_warning(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", ["v1"])
    srv.digest_header = "md5:abc"
    summary = fetch([f"{srv.host}/team/app:v1"], opts(tmp_path))
    assert not summary.failed and summary.exit_code == 0
    assert any("registry sent an unusable Docker-Content-Digest 'md5:abc'" in w for w in summary.warnings)
    assert summary.counts()["warnings"] == 1 and summary.counts()["manifests"] == 1


def test_wrong_well_formed_docker_content_digest_still_fails(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", ["v1"])
    srv.digest_header = "sha256:" + "0" * 64
    summary = fetch([f"{srv.host}/team/app:v1"], opts(tmp_path, retries=1))
    assert [f.code for f in summary.failed] == ["fetch.digest-mismatch"]


def test_token_sidecars_record_their_own_repository(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("k8s/nginx", ["1.9"])
    srv.add("mfkit/schema1", ["es256"])
    a, b = f"{srv.host}/k8s/nginx:1.9", f"{srv.host}/mfkit/schema1:es256"
    summary = fetch([a, b], opts(tmp_path, concurrency=2))
    assert not summary.failed
    for repo, given in (("k8s/nginx", a), ("mfkit/schema1", b)):
        records = metas(capture_dir(tmp_path, srv.host, repo, "token", None))
        assert records and all(m["reference_input"] == given for m in records), records


def test_tag_list_over_1_mib_is_read_and_the_cap_names_its_flag(srv: FaultServer, tmp_path: Path) -> None:
    tags = [f"tag-{i:07d}-{'x' * 40}" for i in range(140000)]  # about 7 MB in one page
    srv.tag_list["team/app"] = tags
    with Registry(srv.host, username=USER, password=PASSWORD, plain_http=True) as reg:
        [page] = list(reg.list_tags("team/app"))
        assert len(page.body) > 7_000_000 and json.loads(page.body)["tags"] == tags
    with Registry(srv.host, username=USER, password=PASSWORD, plain_http=True, max_list_size=1 << 20) as reg:
        with pytest.raises(FetchError) as info:
            list(reg.list_tags("team/app"))
    assert info.value.code == "fetch.too-large" and "--max-list-size" in (info.value.hint or "")


def test_force_never_fetches_dot_and_empty_tags(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", ["v1"])
    srv.tag_list["team/app"] = ["v1", ".", "..", ""]
    summary = fetch([f"{srv.host}/team/app"], opts(tmp_path, all_tags=True, force=True))
    assert not summary.failed, summary.failed
    odd = [r for r, why in summary.skipped if why == "cannot be expressed as a URL path segment"]
    assert len(odd) == 3
    paths = [r["path"] for r in srv.requests if "/manifests/" in r["path"]]
    assert set(paths) == {"/v2/team/app/manifests/v1"}
    folder = capture_dir(tmp_path, srv.host, "team/app", "manifests", None)
    assert sorted(p.name for p in folder.iterdir()) == [capture_dir(tmp_path, srv.host, "team/app", "manifests",
                                                                    "v1").name]


def test_output_that_is_a_file_is_a_usage_error(srv: FaultServer, tmp_path: Path) -> None:
    srv.add("team/app", ["v1"])
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile, afile / "sub"):
        proc = run_cli("fetch", "--creds", USER, "--password-stdin", "--plain-http", "-o", str(out),
                       f"{srv.host}/team/app:v1", stdin=PASSWORD + "\n", env={"HOME": str(tmp_path)})
        assert proc.returncode == 2, proc.stderr
        assert "-o" in proc.stderr
    assert not srv.requests


def test_short_content_length_does_not_poison_the_retry(srv: FaultServer, tmp_path: Path) -> None:
    _schema2(srv)  # plain sha256 of the bytes: a short body is a digest mismatch
    srv.plan("/v2/team/s2/manifests/v1", ["short-length"])
    summary = fetch([f"{srv.host}/team/s2:v1"], opts(tmp_path, retries=2))
    assert not summary.failed, summary.failed
    assert summary.retries == 1
    [manifest] = [f for f in summary.fetched if f.kind == "manifests"]
    assert manifest.digest == srv.repos["team/s2"]["v1"].digest


def test_blob_redirect_to_an_unsupported_scheme_is_not_retried(srv: FaultServer, tmp_path: Path) -> None:
    _schema2(srv)
    srv.blob_location = "ftp://127.0.0.1/storage/{digest}"
    summary = fetch([f"{srv.host}/team/s2:v1"], opts(tmp_path))
    [failed] = summary.failed
    assert failed.code == "policy.redirect-scheme" and "redirect to an unsupported scheme" in failed.reason
    assert summary.retries == 0


def test_signed_schema1_cut_short_with_a_matching_length_is_retried_never_saved(srv, tmp_path) -> None:
    """A body cut short but with a matching Content-Length: only the digest check can tell."""
    good = srv.add("team/app", ["v1"])["v1"]
    srv.plan("/v2/team/app/manifests/v1", ["cut"])
    summary = fetch([f"{srv.host}/team/app:v1"], opts(tmp_path / "once"))
    assert [f.digest for f in summary.fetched if f.kind == "manifests"] == [good.digest]
    assert summary.retries >= 1
    srv.plan("/v2/team/app/manifests/v1", ["cut"] * 20)
    summary = fetch([f"{srv.host}/team/app:v1"], opts(tmp_path / "always", retries=2))
    assert not [f for f in summary.fetched if f.kind == "manifests"] and summary.failed
    assert not list(manifest_dir(tmp_path / "always", srv, "team/app", "v1").glob("*.body"))
