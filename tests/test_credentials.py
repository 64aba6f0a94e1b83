"""Credentials where skopeo/podman/docker users keep them: parsing, precedence, helpers, use.

Every test builds its own HOME / XDG / DOCKER_CONFIG / REGISTRY_AUTH_FILE in a temp folder
and passes that environment explicitly; the fake helper ``docker-credential-mfkittest`` is
a small script put on a temp PATH.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mfkit.core.credentials import (
    CredentialsFormatError,
    decode_auth_field,
    entry_credentials,
    match_entry,
    normalize_key,
    parse_auth_file,
    parse_creds_flag,
    parse_helper_output,
)
from mfkit.credstore import CredentialSearch, auth_file_paths
from mfkit.errors import UsageError
from mfkit.fetch import FetchOptions, fetch
from tests.faultserver import FaultServer

ROOT = Path(__file__).resolve().parent.parent
PW = "file-pw-1234"
IDENT = "refresh-abcdef-9876"
HELPER_PW = "helper-pw-5678"
LEAKS: list[str] = []


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_json(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def helper(bindir: Path, name: str = "mfkittest", user: str = "helperuser", secret: str = HELPER_PW) -> Path:
    """A fake docker-credential helper: answers for any server, records what it was asked."""
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / f"docker-credential-{name}"
    log = bindir / f"{name}.log"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "server = sys.stdin.read().strip()\n"
        f"open({str(log)!r}, 'a').write(sys.argv[1] + ' ' + server + '\\n')\n"
        "if server.startswith('unknown'):\n"
        "    print('credentials not found in native keychain'); sys.exit(1)\n"
        f"print(json.dumps({{'ServerURL': server, 'Username': {user!r}, 'Secret': {secret!r}}}))\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    h = tmp_path / "home"
    h.mkdir()
    return {"HOME": str(h), "PATH": str(tmp_path / "bin") + os.pathsep + "/usr/bin:/bin"}


# --- pure parsing ---


def test_creds_flag() -> None:
    assert parse_creds_flag("bob") == ("bob", None)
    assert parse_creds_flag("bob:") == ("bob", None)
    with pytest.raises(UsageError, match="--password-stdin"):
        parse_creds_flag("bob:secret")
    with pytest.raises(UsageError):
        parse_creds_flag(":secret")


def test_auth_field_and_entries() -> None:
    assert decode_auth_field(b64("u:pa:ss")) == ("u", "pa:ss")
    assert decode_auth_field(b64("u:pw").rstrip("=")) == ("u", "pw")  # unpadded, as some tools write it
    for bad in ("***", b64("nocolon"), b64(":pw")):
        with pytest.raises(CredentialsFormatError) as info:
            decode_auth_field(bad)
        assert "pw" not in str(info.value)
    creds = entry_credentials({"auth": b64(f"u:{PW}")}, "x")
    assert (creds.username, creds.password, creds.identity_token) == ("u", PW, None)
    assert PW not in repr(creds)
    ident = entry_credentials({"auth": b64("u:"), "identitytoken": IDENT}, "x")
    assert ident.identity_token == IDENT and ident.username == "u" and IDENT not in repr(ident)
    assert entry_credentials({}, "x") is None  # docker keeps empty entries after logout


def test_auth_file_shapes() -> None:
    assert parse_auth_file(b"").auths == {}
    parsed = parse_auth_file(json.dumps({"auths": {"h:5000": {"auth": "x"}}, "credsStore": "desktop",
                                         "credHelpers": {"gcr.io": "gcloud"}, "psFormat": "x"}).encode())
    assert list(parsed.auths) == ["h:5000"] and parsed.creds_store == "desktop"
    assert parsed.cred_helpers == {"gcr.io": "gcloud"}
    for bad in (b"{", b"[]", b'{"auths": []}', b'{"credsStore": 1}', b'{"credHelpers": {"a": 1}}'):
        with pytest.raises(CredentialsFormatError):
            parse_auth_file(bad)


def test_helper_output() -> None:
    c = parse_helper_output(json.dumps({"Username": "u", "Secret": "s"}).encode(), "src")
    assert (c.username, c.password) == ("u", "s")
    t = parse_helper_output(json.dumps({"Username": "<token>", "Secret": IDENT}).encode(), "src")
    assert t.identity_token == IDENT and t.username is None
    for bad in (b"nope", b"{}", json.dumps({"Username": "u"}).encode()):
        with pytest.raises(CredentialsFormatError):
            parse_helper_output(bad, "src")


@pytest.mark.parametrize("key,domain,repo,hit", [
    ("https://index.docker.io/v1/", "docker.io", "library/nginx", True),
    ("index.docker.io", "docker.io", None, True),
    ("registry-1.docker.io", "docker.io", None, True),
    ("h:5000", "h:5000", None, True),
    ("https://h:5000", "h:5000", None, True),
    ("http://h:5000/v2/", "h:5000", None, True),
    ("h", "h:5000", None, False),
    ("h:5000", "h", None, False),
    ("H:5000", "h:5000", None, True),
    ("h:5000/team/app", "h:5000", "team/app", True),
    ("h:5000/team", "h:5000", "team/app", True),
    ("h:5000/other", "h:5000", "team/app", False),
])
def test_key_matching(key: str, domain: str, repo: str | None, hit: bool) -> None:
    assert (match_entry({key: {}}, domain, repo) == key) is hit


def test_exact_key_beats_normalized() -> None:
    keys = {"https://h:5000": {}, "h:5000": {}}
    assert match_entry(keys, "h:5000") == "h:5000"
    assert normalize_key("HTTPS://Index.Docker.io/v1/") == "index.docker.io"


# --- precedence (files and helpers) ---


def test_file_order(tmp_path: Path, home: dict[str, str]) -> None:
    env = dict(home, XDG_RUNTIME_DIR=str(tmp_path / "run"), DOCKER_CONFIG=str(tmp_path / "dc"))
    assert auth_file_paths(env) == [tmp_path / "run/containers/auth.json",
                                    Path(home["HOME"]) / ".config/containers/auth.json",
                                    tmp_path / "dc/config.json"]
    env["REGISTRY_AUTH_FILE"] = str(tmp_path / "explicit.json")
    assert auth_file_paths(env) == [tmp_path / "explicit.json", tmp_path / "dc/config.json"]
    assert auth_file_paths(home) == [Path(home["HOME"]) / ".config/containers/auth.json",
                                     Path(home["HOME"]) / ".docker/config.json"]


def _entry(user: str) -> dict:
    return {"auths": {"reg.test:5000": {"auth": b64(f"{user}:{PW}")}}}


def test_precedence_between_files(tmp_path: Path, home: dict[str, str]) -> None:
    docker = write_json(Path(home["HOME"]) / ".docker/config.json", _entry("docker-user"))
    assert CredentialSearch(env=home).lookup("reg.test:5000").username == "docker-user"
    dc = dict(home, DOCKER_CONFIG=str(tmp_path / "dc"))
    write_json(tmp_path / "dc/config.json", _entry("dockerconfig-user"))
    found = CredentialSearch(env=dc).lookup("reg.test:5000")
    assert found.username == "dockerconfig-user" and found.source.endswith("dc/config.json (auths)")
    xdg = dict(dc, XDG_RUNTIME_DIR=str(tmp_path / "run"))
    write_json(tmp_path / "run/containers/auth.json", _entry("podman-user"))
    assert CredentialSearch(env=xdg).lookup("reg.test:5000").username == "podman-user"
    explicit = dict(xdg, REGISTRY_AUTH_FILE=str(write_json(tmp_path / "a.json", _entry("authfile-user"))))
    assert CredentialSearch(env=explicit).lookup("reg.test:5000").username == "authfile-user"
    # an auth file without the registry falls through to the docker config
    write_json(tmp_path / "a.json", {"auths": {"elsewhere": {"auth": b64("x:y")}}})
    assert CredentialSearch(env=explicit).lookup("reg.test:5000").username == "dockerconfig-user"
    assert CredentialSearch(env=home).lookup("other.test") is None
    assert CredentialSearch(env=home).lookup("reg.test:5000").source == "~/.docker/config.json (auths)"
    assert docker.exists()


def test_helpers(tmp_path: Path, home: dict[str, str]) -> None:
    log = helper(tmp_path / "bin")
    cfg = {"auths": {"reg.test:5000": {"auth": b64(f"file-user:{PW}")}, "unknown.test": {"auth": b64("f:g")}},
           "credHelpers": {"reg.test:5000": "mfkittest"}}
    write_json(Path(home["HOME"]) / ".docker/config.json", cfg)
    found = CredentialSearch(env=home).lookup("reg.test:5000")
    assert (found.username, found.password) == ("helperuser", HELPER_PW)
    assert found.source == "~/.docker/config.json (credHelpers): docker-credential-mfkittest"
    assert log.read_text().split() == ["get", "reg.test:5000"]
    # credsStore: asked for every registry; "not found" quietly falls through to auths
    cfg2 = {"auths": {"unknown.test": {"auth": b64(f"f:{PW}")}}, "credsStore": "mfkittest"}
    write_json(Path(home["HOME"]) / ".docker/config.json", cfg2)
    warnings: list[str] = []
    search = CredentialSearch(env=home, warn=warnings.append)
    assert search.lookup("docker.io").username == "helperuser"
    assert log.read_text().splitlines()[-1] == "get https://index.docker.io/v1/"
    assert search.lookup("unknown.test").username == "f" and not warnings


def test_missing_helper_warns_and_continues(tmp_path: Path, home: dict[str, str]) -> None:
    write_json(Path(home["HOME"]) / ".docker/config.json",
               {"auths": {"reg.test:5000": {"auth": b64(f"file-user:{PW}")}},
                "credHelpers": {"reg.test:5000": "absent"}})
    warnings: list[str] = []
    found = CredentialSearch(env=home, warn=warnings.append).lookup("reg.test:5000")
    assert found.username == "file-user"
    assert warnings == ["credential helper docker-credential-absent not found on PATH; "
                        "trying the next credential source"]


def test_malformed_file_warns(tmp_path: Path, home: dict[str, str]) -> None:
    p = Path(home["HOME"]) / ".docker/config.json"
    p.parent.mkdir(parents=True)
    p.write_text("{not json")
    warnings: list[str] = []
    assert CredentialSearch(env=home, warn=warnings.append).lookup("reg.test") is None
    assert "not valid JSON" in warnings[0]


# --- used for real against the fault server ---


@pytest.fixture
def srv():
    server = FaultServer(refresh_tokens={IDENT: "alice"}, users={"alice": PW}).start()
    server.add("team/app", ["v1"])
    try:
        yield server
    finally:
        LEAKS.extend(server.issued)
        server.stop()


def _token_requests(srv: FaultServer) -> list[dict]:
    return [r for r in srv.requests if r["path"].startswith("/token")]


def test_auth_file_used_by_fetch(srv: FaultServer, tmp_path: Path, home: dict[str, str]) -> None:
    write_json(Path(home["HOME"]) / ".docker/config.json", {"auths": {srv.host: {"auth": b64(f"alice:{PW}")}}})
    summary = fetch([f"{srv.host}/team/app:v1"], FetchOptions(output=tmp_path / "o", plain_http=True, env=home))
    assert not summary.failed, summary.failed
    assert summary.credentials == {srv.host: "~/.docker/config.json (auths)"}
    [req] = _token_requests(srv)
    assert req["method"] == "GET" and (req["authorization"] or "").startswith("Basic ")
    text = summary.text() + json.dumps(summary.to_dict())
    assert PW not in text and "credentials: ~/.docker/config.json (auths)" in text
    # --no-creds: anonymous, and this server refuses anonymous tokens
    srv.requests.clear()
    anon = fetch([f"{srv.host}/team/app:v1"], FetchOptions(output=tmp_path / "a", plain_http=True, env=home,
                                                           no_creds=True, retries=0))
    assert [f.code for f in anon.failed] == ["auth.refused"]
    assert all(r["authorization"] is None for r in _token_requests(srv))


@pytest.mark.parametrize("oauth_post", [True, False])
def test_identity_token_refresh_flow(srv: FaultServer, tmp_path: Path, home: dict[str, str], oauth_post: bool) -> None:
    srv.oauth_post = oauth_post
    write_json(Path(home["HOME"]) / ".docker/config.json",
               {"auths": {f"https://{srv.host}": {"auth": b64("alice:"), "identitytoken": IDENT}}})
    summary = fetch([f"{srv.host}/team/app:v1"], FetchOptions(output=tmp_path / "o", plain_http=True, env=home))
    assert not summary.failed, summary.failed
    reqs = _token_requests(srv)
    assert reqs[0]["method"] == "POST" and reqs[0]["authorization"] is None  # spec §5.6
    if oauth_post:
        assert len(reqs) == 1
    else:  # POST not supported: GET with Basic user:identity-token
        assert [r["method"] for r in reqs] == ["POST", "GET"]
        assert base64.b64decode(reqs[1]["authorization"][6:]).decode() == f"alice:{IDENT}"
    saved = b"".join(p.read_bytes() for p in (tmp_path / "o").rglob("*") if p.is_file())
    assert IDENT.encode() not in saved and PW.encode() not in saved


def test_cli_with_helper_and_auth_file(srv: FaultServer, tmp_path: Path, home: dict[str, str]) -> None:
    helper(tmp_path / "bin", user="alice", secret=PW)
    authfile = write_json(tmp_path / "auth.json", {"credHelpers": {srv.host: "mfkittest"}})
    env = {**os.environ, **home, "REGISTRY_AUTH_FILE": str(authfile), "PYTHONPATH": str(ROOT)}
    env["PATH"] = home["PATH"] + os.pathsep + os.environ.get("PATH", "")
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "mfkit", "fetch", "--plain-http", "-o", str(out),
                           f"{srv.host}/team/app:v1"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"credentials: {authfile} (credHelpers): docker-credential-mfkittest for {srv.host}" in proc.stdout
    everything = proc.stdout + proc.stderr + "".join(
        p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    for secret in [PW, IDENT, HELPER_PW, *srv.issued]:
        assert secret not in everything


def test_credentials_are_looked_up_per_registry_host_only(srv: FaultServer, tmp_path: Path,
                                                          home: dict[str, str]) -> None:
    # documented (docs/fetch.md): a per-repository key alone is not used; the host key is
    write_json(Path(home["HOME"]) / ".docker/config.json",
               {"auths": {f"{srv.host}/team/app": {"auth": b64(f"alice:{PW}")}}})
    summary = fetch([f"{srv.host}/team/app:v1"], FetchOptions(output=tmp_path / "o", plain_http=True, env=home,
                                                              retries=0))
    assert summary.credentials == {srv.host: "none (anonymous)"}
    assert [f.code for f in summary.failed] == ["auth.refused"]
    assert all(r["authorization"] is None for r in _token_requests(srv))
