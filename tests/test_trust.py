"""Trust kept apart from validity: pinned keys, x5c chains to supplied roots, time and name checks."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import mfkit
from fixtures.signer import Signer, build_payload, ec_key, key_id, sign
from mfkit.core.trust import TrustPolicy, parse_roots, parse_trust_keys
from tests.conftest import FIXTURES

SEED = FIXTURES / "seed" / "harbor-k8s-nginx-1.9.http"
SEED_KID = "L6XL:QVO4:3YHZ:JPSG:I7AV:ITIX:52JM:YAEH:2PJM:KKIS:57WC:LFVS"
NOW = dt.datetime(2026, 12, 3, tzinfo=dt.timezone.utc)
PAYLOAD = build_payload("t/trust", "1", [("sha256:" + "ab" * 32, "/bin/sh -c #(nop) ADD file:x in /")],
                        created="2018-01-02T00:00:00Z")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, issuer_key, cn, issuer_cn, *, ca, start, days, eku=None):
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(issuer_cn))
         .public_key(subject.public_key()).serial_number(abs(hash(cn)) % 2**63 + 1)
         .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def chain_doc(*, eku=None, leaf_days=3650, when="2018-09-03T09:53:49Z"):
    """A manifest signed by an x5c leaf under a fresh root; returns (document, root PEM)."""
    root_key, leaf_key = ec_key(501, "P-384"), ec_key(502)
    start = dt.datetime(2018, 1, 1, tzinfo=dt.timezone.utc)
    root = _cert(root_key, root_key, "test root", "test root", ca=True, start=start, days=36500)
    leaf = _cert(leaf_key, root_key, "test leaf", "test root", ca=False, start=start, days=leaf_days, eku=eku)
    der = leaf.public_bytes(serialization.Encoding.DER)
    return sign(PAYLOAD, [Signer(leaf_key, x5c=[der])], when), root.public_bytes(serialization.Encoding.PEM)


def test_no_trust_input_never_calls_a_document_trusted():
    [_, man] = mfkit.load(str(SEED))
    assert man.verified is True and man.trusted is None
    assert man.to_dict()["signatures"][0]["trust"] == "unknown"


def test_pinned_key_id_makes_the_seed_trusted_and_another_does_not():
    [_, man] = mfkit.load(str(SEED), policy=TrustPolicy(key_ids=frozenset({SEED_KID})))
    assert man.trusted is True
    [_, man] = mfkit.load(str(SEED), policy=TrustPolicy(key_ids=frozenset({"AAAA:" * 11 + "AAAA"})))
    assert man.verified is True and man.trusted is False


def test_trust_keys_file_jwk_set_and_pem(tmp_path):
    jwk = json.loads((FIXTURES / "seed" / "harbor-k8s-nginx-1.9.manifest.json").read_bytes())["signatures"][0]["header"]["jwk"]
    assert parse_trust_keys(json.dumps({"keys": [jwk]}).encode()) == {SEED_KID}
    pem = ec_key(7).public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert parse_trust_keys(pem) == {key_id(ec_key(7).public_key())}


def test_x5c_samples_chain_to_the_supplied_root(corpus):
    roots = parse_roots((corpus / "libtrust-sample" / "meta" / "ca.pem").read_bytes())
    docs = mfkit.load(str(corpus / "libtrust-sample" / "signed"), policy=TrustPolicy(roots=roots))
    x5c = [d for d in docs if any(s.key_source == "x5c" for s in d.signatures)]
    plain = [d for d in docs if all(s.key_source == "jwk" for s in d.signatures)]
    assert x5c and plain
    assert all(d.trusted is True for d in x5c)
    assert all(d.trusted is False and d.verified is True for d in plain)


def test_chain_to_another_root_is_untrusted_with_a_reason():
    doc, _ = chain_doc()
    foreign = _cert(ec_key(900), ec_key(900), "foreign", "foreign", ca=True,
                    start=dt.datetime(2018, 1, 1, tzinfo=dt.timezone.utc), days=36500)
    a = mfkit.analyze(mfkit.Response(source="x", body=doc), policy=TrustPolicy(roots=(foreign,)), now=NOW)
    assert a.verified is True and a.trusted is False
    assert "no path" in a.trust[0].reason or "rejected" in a.trust[0].reason


def test_codesigning_only_leaf_fails_like_libtrust_verifychains():
    doc, root = chain_doc(eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    a = mfkit.analyze(mfkit.Response(source="x", body=doc), policy=TrustPolicy(roots=parse_roots(root)), now=NOW)
    assert a.verified is True and a.trusted is False
    assert "incompatible key usage" in a.trust[0].reason


def test_leaf_expired_now_but_valid_when_signed_is_trusted_and_says_so():
    doc, root = chain_doc(leaf_days=365)
    a = mfkit.analyze(mfkit.Response(source="x", body=doc), policy=TrustPolicy(roots=parse_roots(root)), now=NOW)
    assert a.trusted is True
    at_signing, at_now = a.trust[0].chain
    assert at_signing.ok and not at_now.ok and "not valid now" in a.trust[0].reason


def test_signature_time_in_the_future_and_before_created():
    future = sign(PAYLOAD, [Signer(ec_key(3))], "2099-01-01T00:00:00Z")
    a = mfkit.analyze(mfkit.Response(source="x", body=future), now=NOW)
    assert a.verified is True and "jws.time-future" in {f.code for f in a.findings}
    early = sign(PAYLOAD, [Signer(ec_key(3))], "2017-01-01T00:00:00Z")
    a = mfkit.analyze(mfkit.Response(source="x", body=early), now=NOW)
    assert "jws.time-before-created" in {f.code for f in a.findings}


def test_name_or_tag_differing_from_the_reference():
    body = (FIXTURES / "seed" / "harbor-k8s-nginx-1.9.manifest.json").read_bytes()
    same = mfkit.analyze(mfkit.Response(source="x", body=body, reference="registry.example.test/k8s/nginx:1.9"))
    assert "manifest.reference-mismatch" not in {f.code for f in same.findings}
    other = mfkit.analyze(mfkit.Response(source="x", body=body, reference="registry.example.test/k8s/nginx:latest"))
    [f] = [f for f in other.findings if f.code == "manifest.reference-mismatch"]
    assert f.where == "$.tag"


def test_require_trusted_exit_codes(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "mfkit", "analyze", *args, str(SEED)], capture_output=True)
    assert run().returncode == 0
    assert run("--require-trusted").returncode == 1
    assert run("--require-trusted", "--trust-key", SEED_KID).returncode == 0
    bad = tmp_path / "bad.pem"
    bad.write_text("not a pem")
    assert run("--trust-ca", str(bad)).returncode == 2


@pytest.mark.parametrize("status", ["trusted", "untrusted", "unknown"])
def test_json_carries_trust_per_signature(status, corpus):
    roots = parse_roots((corpus / "libtrust-sample" / "meta" / "ca.pem").read_bytes())
    policy = {"trusted": TrustPolicy(roots=roots), "untrusted": TrustPolicy(key_ids=frozenset({"X"})),
              "unknown": None}[status]
    [a] = mfkit.load(str(corpus / "libtrust-sample" / "signed" / "00000-x5c-rsa2048.json"), policy=policy)
    d = a.to_dict()
    assert d["signatures"][0]["trust"] == status
    assert d["trusted"] is {"trusted": True, "untrusted": False, "unknown": None}[status]
