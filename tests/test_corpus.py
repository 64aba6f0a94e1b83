"""Every file of the shared corpus gets its independently known outcome (Go libtrust, skopeo)."""

from __future__ import annotations

import hashlib
import json

import pytest

import mfkit


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_public_files_match_libtrust_verdicts(corpus):
    expected = {d["file"]: d for d in _jsonl(corpus / "public" / "libtrust.jsonl")}
    files = sorted((corpus / "public").glob("*.json"))
    assert len(files) >= 20
    for path in files:
        [doc] = mfkit.load(str(path))
        exp = expected.get(path.name)
        if exp is None or (not exp["ok"] and exp["error"].startswith("parse: missing signature key")):
            assert doc.verified is None, path.name  # unsigned or not schema 1
            continue
        assert doc.verified is exp["ok"], (path.name, [s.error for s in doc.signatures])
        if exp["payload_sha256"]:
            assert doc.digests.payload == "sha256:" + exp["payload_sha256"], path.name
            assert doc.digest == doc.digests.payload
        if exp["ok"]:
            assert [s.key_id for s in doc.signatures] == exp["key_ids"], path.name
            assert [s.alg for s in doc.signatures] == exp["algs"], path.name


def test_unsigned_public_files_digest_is_sha256_of_the_file(corpus):
    for name in ("moby-no_signature_manifest.json", "cimage-v2s1-unsigned.manifest.json", "cimage-v2s1.everything.json"):
        raw = (corpus / "public" / name).read_bytes()
        [doc] = mfkit.load(str(corpus / "public" / name))
        assert doc.kind == "schema1-unsigned"
        assert doc.digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    # skopeo/containers-image: the unsigned copy of v2s1 has the signed copy's payload digest.
    [unsigned] = mfkit.load(str(corpus / "public" / "cimage-v2s1-unsigned.manifest.json"))
    [signed] = mfkit.load(str(corpus / "public" / "cimage-v2s1.manifest.json"))
    assert unsigned.digest == signed.digests.payload == (
        "sha256:7364fea9d84ee548ab67d4c46c6006289800c98de3fbf8c0a97138dfcc23f000")


def test_all_48_libtrust_signed_samples_verify_with_listed_digests_and_key_ids(corpus):
    rows = _jsonl(corpus / "libtrust-sample" / "meta" / "index.jsonl")
    assert len(rows) == 48
    for row in rows:
        [doc] = mfkit.load(str(corpus / "libtrust-sample" / "signed" / row["file"]))
        assert doc.verified is True, (row["file"], [s.error for s in doc.signatures])
        assert doc.digest == row["digest"], row["file"]
        assert sorted(s.key_id for s in doc.signatures) == row["key_ids"], row["file"]
        assert doc.manifest.name == row["name"] and doc.manifest.tag == row["tag"]
        assert doc.layers.entries == row["layers"]
        assert doc.layers.unique_blobs == row["unique_blobsums"]
        assert doc.layers.empty == row["empty_layers"]
        assert doc.chain.ok and doc.chain.top == row["top_id"]
        assert doc.ok, [f.code for f in doc.findings]


def test_libtrust_samples_cover_every_key_type(corpus):
    seen = set()
    for path in (corpus / "libtrust-sample" / "signed").glob("*.json"):
        [doc] = mfkit.load(str(path))
        seen.update((s.alg, s.key_source, s.key_type.split()[0]) for s in doc.signatures)
        if len(doc.signatures) > 1:
            seen.add("multi")
    algs = {a for a, *_ in (x for x in seen if isinstance(x, tuple))}
    assert {"ES256", "ES384", "ES512", "RS256"} <= algs
    assert any(isinstance(x, tuple) and x[1] == "x5c" for x in seen)
    assert "multi" in seen


def test_none_of_the_65_tampered_samples_verifies(corpus):
    rows = _jsonl(corpus / "libtrust-sample" / "tampered.libtrust.jsonl")
    assert len(rows) == 65
    for row in rows:
        [doc] = mfkit.load(str(corpus / "libtrust-sample" / "tampered" / row["file"]))
        assert doc.verified is not True, row["file"]
        assert not doc.ok or row["mutation"] == "no-signatures-key", row["file"]
        if row["mutation"] == "no-signatures-key":
            assert doc.kind == "schema1-unsigned"
        elif row["mutation"] == "truncated":
            # Cut before the signatures: nothing shows it was signed, and it is not JSON.
            assert {f.code for f in doc.findings} & {"json.invalid", "json.trailing-data"}
        else:
            assert doc.kind == "schema1-signed" and doc.verified is False, row["file"]
        # Where libtrust rebuilt a payload, mfkit rebuilds the same bytes (libtrust's empty payload
        # for `signatures: []` is its quirk, spec §1.3 step 6: mfkit rebuilds none).
        if row["payload_sha256"] and row["mutation"] not in ("no-signatures-key", "no-signatures"):
            assert doc.digests.payload == "sha256:" + row["payload_sha256"], row["file"]


@pytest.mark.parametrize("mutation,reason", [
    ("kid-mismatch", "does not match the key's ID"),
    ("alg-swap", "alg 'ES384'"),
    ("sig-bitflip", "does not match the payload"),
    ("formatlength-minus1", "does not match the payload"),
])
def test_tampered_samples_fail_for_the_right_reason(corpus, mutation, reason):
    for path in sorted((corpus / "libtrust-sample" / "tampered").glob(f"*.{mutation}.json")):
        [doc] = mfkit.load(str(path))
        assert any(reason in (s.error or "") for s in doc.signatures), (path.name, [s.error for s in doc.signatures])
