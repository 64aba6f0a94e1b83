"""The seed case: the 2018 Harbor session, read exactly as it is."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import orjson
import pytest

import mfkit
from tests.conftest import FIXTURES, SHARED

# Expected values from the issue text and the shared corpus (Go libtrust, skopeo).
PAYLOAD = "sha256:ad6e97e5c2ad173f31428bca04d28930ae962ad4c283f63bb77c96db29c26357"
BODY = "sha256:e411eec9cb27866b72b3245a0f01243e6446aa408a765c1dcc822e5c05bd78b6"
KID = "L6XL:QVO4:3YHZ:JPSG:I7AV:ITIX:52JM:YAEH:2PJM:KKIS:57WC:LFVS"
EMPTY_4F = "sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1"
SEED = SHARED / "seed" / "harbor-session-2018.txt"


@pytest.fixture(scope="module")
def seed_docs():
    if not SEED.exists():
        pytest.skip(f"seed transcript not found at {SEED}")
    return mfkit.load(str(SEED))


def test_transcript_yields_token_tags_and_manifest(seed_docs):
    assert [d.kind for d in seed_docs] == ["token-response", "tag-list", "schema1-signed"]
    assert [d.response.url.split("/")[-1] for d in seed_docs][1:] == ["list", "1.9"]


def test_manifest_keeps_its_headers_as_evidence(seed_docs):
    m = seed_docs[2]
    assert m.response.header("Content-Type") == "application/vnd.docker.distribution.manifest.v1+prettyjws"
    assert m.response.header("docker-content-digest") == PAYLOAD
    assert m.response.header("ETAG") == f'"{PAYLOAD}"'
    raw = SEED.read_bytes()
    # The body is bounded by Content-Length and its offset points into the transcript.
    assert raw[m.response.body_offset : m.response.body_offset + 6769] == m.response.body
    assert len(m.response.body) == 6769


def test_three_digests_and_which_one_the_header_matches(seed_docs):
    m = seed_docs[2]
    assert m.digests.body == BODY == "sha256:" + hashlib.sha256(m.response.body).hexdigest()
    assert m.digests.payload == PAYLOAD
    assert m.digests.header == PAYLOAD and m.digests.header_matches == "payload"
    assert m.digest == PAYLOAD


def test_signature_verifies_over_the_rebuilt_payload(seed_docs):
    m = seed_docs[2]
    assert m.verified is True and m.ok
    [s] = m.signatures
    assert (s.alg, s.key_source, s.key_id, s.jwk_kid, s.key_type) == ("ES256", "jwk", KID, KID, "EC P-256")
    assert s.time == "2018-09-03T09:53:49Z"
    assert s.high_s is True  # spec §1.7: the seed's own s is the high one
    assert m.envelope.format_length == 6122 and m.envelope.format_tail == b"\n}"
    assert m.payload == m.response.body[:6122] + b"\n}"


def test_chain_of_eight_entries_and_blob_dedupe(seed_docs):
    m = seed_docs[2]
    assert m.chain.ok and len(m.chain.order) == 8
    assert m.chain.graph.number_of_nodes() == 8 and m.chain.graph.number_of_edges() == 7
    assert m.chain.top.startswith("9ca180bab5db") and m.chain.base.startswith("b035fa1d7993")
    assert m.layers.entries == 8 and m.layers.unique_blobs == 4
    assert m.layers.repeated == {EMPTY_4F: [0, 1, 4, 5, 6]}
    assert m.layers.empty_blobs == {EMPTY_4F: [0, 1, 4, 5, 6]}
    top = m.chain.graph.nodes[m.chain.top]
    assert top["created_by"].endswith('CMD ["nginx" "-g" "daemon off;"]')
    assert m.chain.graph.nodes[m.chain.base]["created_by"].startswith("/bin/sh -c #(nop) ADD file:")


def test_token_response_is_reported_without_the_token(seed_docs):
    token = seed_docs[0]
    text = orjson.dumps(token.to_dict()).decode()
    assert "eyJ0eXAi" not in text


def test_shipped_fixture_matches_the_seed():
    [tags, man] = mfkit.load(str(FIXTURES / "seed" / "harbor-k8s-nginx-1.9.http"))
    assert tags.kind == "tag-list" and man.kind == "schema1-signed"
    assert man.digests.body == BODY and man.digest == PAYLOAD and man.verified
    [bare] = mfkit.load(str(FIXTURES / "seed" / "harbor-k8s-nginx-1.9.manifest.json"))
    assert bare.digests.header is None and bare.digest == PAYLOAD


def test_cli_prints_verified_signature_digests_and_chain():
    if not SEED.exists():
        pytest.skip("seed transcript missing")
    run = subprocess.run([sys.executable, "-m", "mfkit", "analyze", str(SEED)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "VERIFIED" in out and KID in out
    assert f"header           {PAYLOAD}  -> matches payload" in out
    assert BODY in out
    assert "chain: ok, 8 entries" in out
    assert "eyJ0eXAi" not in out and "REDACTED-PASSWORD" not in out


def test_libtrust_producer_fingerprint_matches_real_headers_not_the_22_char_prefix(corpus):
    # The 22nd base64url character carries the first digit of formatLength: "j", never "i".
    [_, man] = mfkit.load(str(FIXTURES / "seed" / "harbor-k8s-nginx-1.9.http"))
    raw = man.response.body
    assert b'"protected": "eyJmb3JtYXRMZW5ndGgiOj' in raw
    assert "jws.non-canonical-layout" not in {f.code for f in man.findings}
    for doc in mfkit.load(str(corpus / "libtrust-sample" / "signed")):
        assert "jws.non-canonical-layout" not in {f.code for f in doc.findings}, doc.source
