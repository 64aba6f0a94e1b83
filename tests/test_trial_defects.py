"""Regressions for what a first-time user found by trying to break mfkit (each named after the defect)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import mfkit
from fixtures.signer import Signer, build_payload, ec_key, sign
from mfkit.inputs import iter_inputs

KEY = Signer(ec_key(777))
GOOD = sign(build_payload("good/img", "v1", [("sha256:" + "1" * 64, "base"), ("sha256:" + "2" * 64, "top")]),
            [KEY], "2020-01-01T00:00:00Z")


def blob(i: int) -> str:
    return "sha256:" + hashlib.sha256(str(i).encode()).hexdigest()


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mfkit", *args], input=stdin, capture_output=True, timeout=120)


def codes(a) -> set[str]:
    return {f.code for f in a.findings}


def test_ansi_escapes_and_newlines_in_signed_fields_never_reach_the_terminal(tmp_path):
    doc = sign(build_payload("e/x", "t\x1b[31m", [(blob(1), "\x1b[2J\r\x08FAKE VERIFIED"), (blob(2), "a\n   trusted: yes")]),
               [KEY], "2020-01-01T00:00:00Z")
    (tmp_path / "ansi.json").write_bytes(doc)
    run = cli("analyze", str(tmp_path / "ansi.json"))
    assert b"\x1b" not in run.stdout and b"\r" not in run.stdout and b"\x08" not in run.stdout
    assert b"\\x1b[31m" in run.stdout
    assert not any(line.strip() == b"trusted: yes" for line in run.stdout.splitlines())


def test_lone_surrogate_in_a_signed_field_is_a_finding_and_the_batch_goes_on(tmp_path):
    payload = build_payload("a/b", "1", [(blob(1), "x")]).replace(b'"tag": "1"', b'"tag": "\\udead"')
    (tmp_path / "surr.json").write_bytes(sign(payload, [KEY], "2020-01-01T00:00:00Z"))
    (tmp_path / "z-good.json").write_bytes(GOOD)
    run = cli("analyze", "--json", str(tmp_path))
    first, second = [json.loads(x) for x in run.stdout.splitlines()]
    assert first["verified"] is True and first["tag"] == "\ufffd"
    assert "json.lone-surrogate" in {f["code"] for f in first["findings"]}
    assert second["verified"] is True and run.returncode == 0


def test_secret_query_values_in_transcript_urls_are_redacted():
    text = (b"$ curl -i 'http://127.0.0.1:5000/v2/a/b/manifests/1?access_token=QSTOKEN456&password=pw&n=1'\n"
            b"HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 2\n\n{}\n")
    run = cli("analyze", "--json", "-", stdin=text)
    assert b"QSTOKEN456" not in run.stdout and b"pw&" not in run.stdout
    assert b"access_token=<redacted>" in run.stdout


def test_fifo_and_device_in_a_folder_are_unreadable_not_a_hang(tmp_path):
    (tmp_path / "good.json").write_bytes(GOOD)
    os.mkfifo(tmp_path / "fifo")
    os.symlink("/dev/zero", tmp_path / "zero")
    run = cli("analyze", "--json", str(tmp_path))
    out = [json.loads(x) for x in run.stdout.splitlines()]
    assert sorted(d["error"]["code"] for d in out if "error" in d) == ["input.not-regular", "input.not-regular"]
    assert run.returncode == 3


def test_folder_that_cannot_be_listed_is_reported(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    (tmp_path / "good.json").write_bytes(GOOD)
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = list(iter_inputs([str(tmp_path)]))
    errors = [i for i in items if isinstance(i, mfkit.InputError)]
    assert [e.code for e in errors] == ["input.unreadable"] and str(locked) in errors[0].message


def test_too_long_file_name_does_not_stop_the_batch(tmp_path):
    (tmp_path / "good.json").write_bytes(GOOD)
    run = cli("analyze", "--json", str(tmp_path / ("b" * 300)), str(tmp_path / "good.json"))
    out = [json.loads(x) for x in run.stdout.splitlines()]
    assert out[0]["error"]["code"] == "input.unreadable" and out[1]["verified"] is True


def test_stdin_named_twice_is_a_usage_error():
    assert cli("analyze", "-", "-", stdin=b"{}").returncode == 2


@pytest.mark.parametrize("transcript,code,severity", [
    (b"HTTP/1.1 200 OK\nContent-Length: 500\n\n{}", "transcript.framing", "error"),  # body shorter than announced
    (b"HTTP/1.1 200 OK\nContent-Length: 2\nContent-Length: 3\n\n{}\n", "transcript.framing", "error"),
    (b"HTTP/1.1 200 OK\nContent-Type: application/json\n\n{}\n$ echo done\n", "transcript.unbounded-body", "warning"),
    (b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\r\n{}\r\n0\r\n\r\n", "transcript.framing", "info"),
])
def test_transcript_framing_is_reported(transcript, code, severity):
    [doc] = mfkit.load_bytes(transcript) if hasattr(mfkit, "load_bytes") else _split(transcript)
    assert (code, severity) in {(f.code, f.severity) for f in doc.findings}
    assert doc.kind == "unknown" and doc.response.body.strip() == b"{}"


def _split(data: bytes):
    from mfkit.inputs import read_bytes_input

    return [mfkit.analyze(r) for r in read_bytes_input(data, "t")]


def test_redirect_in_a_curl_L_transcript_is_not_a_json_error():
    data = (b"HTTP/1.1 307 Temporary Redirect\nLocation: /x\nContent-Length: 0\n\n"
            b"HTTP/1.1 200 OK\nContent-Type: application/vnd.docker.distribution.manifest.v1+prettyjws\n"
            b"Content-Length: " + str(len(GOOD)).encode() + b"\n\n" + GOOD)
    redirect, manifest = _split(data)
    assert redirect.kind == "redirect" and redirect.ok
    assert manifest.verified is True


@pytest.mark.parametrize("doc,code", [
    ({"schemaVersion": 1, "fsLayers": [{"blobSum": blob(1)}], "history": [{"v1Compatibility": {"id": "x"}}]},
     "manifest.v1compat-type"),
    ({"schemaVersion": "1", "fsLayers": [], "history": []}, "manifest.schema-version"),
    (None, "document.unknown-kind"),
])
def test_go_strictness_gaps(doc, code):
    a = mfkit.analyze_bytes(json.dumps(doc).encode())
    assert code in codes(a)


@pytest.mark.parametrize("raw,code", [(b"[1e999999]", "json.nan"), (b"[" + b"7" * 5000 + b"]", "json.invalid")])
def test_numbers_go_refuses(raw, code):
    assert code in codes(mfkit.analyze_bytes(raw))


def test_case_folded_key_shows_what_docker_would_read():
    payload = build_payload("c/f", "1", [(blob(1), "a"), (blob(2), "b")])
    payload = payload.replace(b'   "history"', b'   "FSLayers": [{"blobSum": "' + blob(9).encode() + b'"}],\n   "history"')
    a = mfkit.analyze_bytes(sign(payload, [KEY], "2020-01-01T00:00:00Z"))
    [f] = [f for f in a.findings if f.code == "json.case-fold-key"]
    assert f.severity == "error" and "1 entries" in f.message and "2 entries" in f.message
    assert a.verified is True and not a.ok


def test_weak_rsa_key_is_reported():
    weak = rsa.generate_private_key(65537, 1024)
    a = mfkit.analyze_bytes(sign(build_payload("w/k", "1", [(blob(1), "a")]), [Signer(weak)], "2020-01-01T00:00:00Z"))
    assert a.verified is True and "jws.weak-key" in codes(a)


def test_version_flag():
    run = cli("--version")
    assert run.returncode == 0 and run.stdout.startswith(b"mfkit ")


def test_trust_inputs_that_are_not_what_they_claim_are_usage_errors(tmp_path):
    (tmp_path / "good.json").write_bytes(GOOD)
    (tmp_path / "private.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    for args in (["--trust-key", "garbage"], ["--trust-keys", str(tmp_path / "private.pem")],
                 ["--trust-ca", str(tmp_path / "good.json")]):
        run = cli("analyze", *args, str(tmp_path / "good.json"))
        assert run.returncode == 2 and b"Traceback" not in run.stderr, args
    with pytest.raises(TypeError):
        mfkit.TrustPolicy(key_ids="L6XL:QVO4:3YHZ:JPSG:I7AV:ITIX:52JM:YAEH:2PJM:KKIS:57WC:LFVS")


def test_api_takes_paths_one_by_one_or_as_a_list(tmp_path):
    (tmp_path / "a.json").write_bytes(GOOD)
    (tmp_path / "b.json").write_bytes(GOOD)
    both = [str(tmp_path / "a.json"), tmp_path / "b.json"]
    assert len(mfkit.load(both)) == len(mfkit.load(*both)) == 2
    assert len(mfkit.history(both)) == 2
    with pytest.raises(TypeError):
        mfkit.load(mfkit.load(both[0])[0])


def test_case_folded_keys_inside_fslayers_and_history_items():
    doc = {"schemaVersion": 1, "fsLayers": [{"BlobSum": blob(1)}],
           "history": [{"V1COMPATIBILITY": json.dumps({"id": "b" * 64})}]}
    found = {(f.code, f.where) for f in mfkit.analyze_bytes(json.dumps(doc).encode()).findings}
    assert ("json.case-fold-key", "$.fsLayers[0].BlobSum") in found
    assert ("json.case-fold-key", "$.history[0].V1COMPATIBILITY") in found
