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
