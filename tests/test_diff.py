"""``mfkit diff``: re-signed (same payload, new signature) vs a different image."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from typer.testing import CliRunner

import mfkit
from fixtures.signer import Signer, build_payload, ec_key, key_id, sign
from mfkit.cli import app
from tests.conftest import FIXTURES
from tests.tamper import bitflip as _bitflip, forged as _forged

BASE = ("sha256:" + "1" * 64, "/bin/sh -c #(nop) ADD file:abc in /")
APP = ("sha256:" + "2" * 64, "/bin/sh -c apt-get install -y nginx")
EXTRA = ("sha256:" + "3" * 64, "/bin/sh -c rm -rf /tmp/*")


@pytest.fixture()
def captures(tmp_path):
    payload = build_payload("k8s/nginx", "1.9", [BASE, APP])
    other = build_payload("k8s/nginx", "1.9", [BASE, APP, EXTRA])
    files = {
        "get1": sign(payload, [Signer(ec_key(11))], "2018-09-03T09:53:49Z"),
        "get2": sign(payload, [Signer(ec_key(12))], "2018-09-04T10:00:00Z"),
        "new": sign(other, [Signer(ec_key(12))], "2018-09-05T10:00:00Z"),
    }
    for name, data in files.items():
        (tmp_path / f"{name}.json").write_bytes(data)
    return tmp_path, payload, other


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def test_resigned_same_payload(captures):
    d, payload, _ = captures
    r = mfkit.diff(str(d / "get1.json"), str(d / "get2.json"))
    assert r.verdict == "re-signed" and r.same_payload and r.payload_identical
    assert r.digest_a == r.digest_b == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert r.keys_a == (key_id(ec_key(11).public_key()),) and r.keys_b == (key_id(ec_key(12).public_key()),)
    assert r.times_a == ("2018-09-03T09:53:49Z",) and r.times_b == ("2018-09-04T10:00:00Z",)
    assert not (r.layers_added or r.layers_removed or r.history_added or r.history_removed or r.payload_diff)
    res = invoke("diff", str(d / "get1.json"), str(d / "get2.json"))
    assert res.exit_code == 0 and "RE-SIGNED, SAME PAYLOAD" in res.output


def test_different_image(captures):
    d, payload, other = captures
    r = mfkit.diff(str(d / "get2.json"), str(d / "new.json"))
    assert r.verdict == "different-image" and not r.same_payload and not r.payload_identical
    assert r.digest_b == "sha256:" + hashlib.sha256(other).hexdigest()
    assert r.layers_added == (EXTRA[0],) and r.layers_removed == ()
    new_id = hashlib.sha256(f"{'3' * 64} {hashlib.sha256(('2' * 64 + ' ' + hashlib.sha256(('1' * 64 + ' ').encode()).hexdigest()).encode()).hexdigest()}".encode()).hexdigest()
    assert len(r.history_added) == 1 and r.history_added[0].startswith(new_id[:12])
    assert any(line.startswith("+") and EXTRA[0] in line for line in r.payload_diff)
    res = invoke("diff", "--json", str(d / "get2.json"), str(d / "new.json"))
    assert res.exit_code == 1
    doc = orjson.loads(res.stdout_bytes)
    assert list(doc) == sorted(doc) and doc["verdict"] == "different-image"
    assert doc["layers"]["added"] == [EXTRA[0]]


def test_identical_bytes(captures):
    d, _, _ = captures
    r = mfkit.diff(str(d / "get1.json"), str(d / "get1.json"))
    assert r.verdict == "identical" and r.same_payload


def test_transcript_with_one_manifest_against_its_body():
    seed = FIXTURES / "seed"
    r = mfkit.diff(str(seed / "harbor-k8s-nginx-1.9.http"), str(seed / "harbor-k8s-nginx-1.9.manifest.json"))
    assert r.verdict == "identical"


def test_no_manifest_is_a_usage_error(tmp_path, captures):
    d, _, _ = captures
    (tmp_path / "tags.json").write_bytes(b'{"name":"k8s/nginx","tags":["1.9"]}')
    res = invoke("diff", str(tmp_path / "tags.json"), str(d / "get1.json"))
    assert res.exit_code == 2 and "holds 0 manifests" in res.output
    res = invoke("diff", str(tmp_path / "missing.json"), str(d / "get1.json"))
    assert res.exit_code == 3


def test_diff_html_escapes(captures):
    d, _, _ = captures
    r = mfkit.diff(str(d / "get1.json"), str(d / "new.json"))
    assert "<script" not in r._repr_html_()


# --- defects found in a new-user trial: "re-signed" only for documents that verify ---

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _malleated(doc: bytes) -> bytes:
    """The same signature with s replaced by n - s: still valid, same key and time, other bytes."""
    import base64

    start = doc.index(b'"signature": "') + len(b'"signature": "')
    end = doc.index(b'"', start)
    sig = base64.urlsafe_b64decode(doc[start:end] + b"=" * (-(end - start) % 4))
    r, s = sig[:32], int.from_bytes(sig[32:], "big")
    new = base64.urlsafe_b64encode(r + (P256_N - s).to_bytes(32, "big")).rstrip(b"=")
    return doc[:start] + new + doc[end:]


@pytest.fixture()
def tampered(captures):
    d, _, _ = captures
    good = (d / "get1.json").read_bytes()
    for name, data in (("bitflip", _bitflip(good)), ("forged", _forged(good)), ("malleated", _malleated(good))):
        (d / f"{name}.json").write_bytes(data)
    return d


def test_diff_bitflipped_signature_is_not_resigned(tampered):
    d = tampered
    r = mfkit.diff(str(d / "get1.json"), str(d / "bitflip.json"))
    assert r.verdict == "same-payload-unverified" and not r.ok and r.flagged == ("B",)
    assert "B does NOT VERIFY" in r.meaning and r.verdict_b.startswith("NOT VERIFIED")
    res = invoke("diff", str(d / "get1.json"), str(d / "bitflip.json"))
    assert res.exit_code == 1 and "RE-SIGNED" not in res.output and "B does NOT VERIFY" in res.output
    res = invoke("diff", str(d / "bitflip.json"), str(d / "get2.json"))
    assert res.exit_code == 1 and "A does NOT VERIFY" in res.output
    res = invoke("diff", "--json", str(d / "bitflip.json"), str(d / "bitflip.json"))
    doc = orjson.loads(res.stdout_bytes)
    assert res.exit_code == 1 and doc["verdict"] == "identical-unverified" and doc["ok"] is False


def test_diff_forged_unsigned_member_is_not_resigned(tampered):
    d = tampered
    r = mfkit.diff(str(d / "get1.json"), str(d / "forged.json"))
    assert r.verdict == "same-payload-unsigned-content" and not r.ok
    assert any("jws.unsigned-content" in p for p in r.problems)
    res = invoke("diff", str(d / "get1.json"), str(d / "forged.json"))
    assert res.exit_code == 1 and "RE-SIGNED" not in res.output and "UNSIGNED CONTENT" in res.output


def test_diff_same_key_and_time_other_signature_bytes_is_not_resigned(tampered):
    d = tampered
    assert mfkit.load(str(d / "malleated.json"))[0].verified is True
    r = mfkit.diff(str(d / "get1.json"), str(d / "malleated.json"))
    assert r.verdict == "same-payload-envelope-altered" and not r.ok
    res = invoke("diff", str(d / "get1.json"), str(d / "malleated.json"))
    assert res.exit_code == 1 and "RE-SIGNED" not in res.output


def test_diff_terminal_injection_is_escaped(tmp_path):
    hostile = ("sha256:" + "4" * 64, "\x1b[2J\rverdict: identical bytes\n\u202e")
    (tmp_path / "a.json").write_bytes(sign(build_payload("k8s/nginx", "1.9", [BASE]), [Signer(ec_key(1))],
                                           "2018-09-03T09:53:49Z"))
    (tmp_path / "b.json").write_bytes(sign(build_payload("k8s/nginx", "1.9", [BASE, hostile]), [Signer(ec_key(1))],
                                           "2018-09-03T09:53:49Z\x1b[31m"))
    res = invoke("diff", str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert res.exit_code == 1
    assert not any(c in res.output for c in ("\x1b", "\r", "\u202e"))
    assert [line for line in res.output.splitlines() if line.startswith("verdict:")] == \
        ["verdict: A DIFFERENT IMAGE (payload digests differ)"]
    assert "\\x1b[2J\\x0dverdict: identical bytes\\x0a\\u202e" in res.output
