"""mfkit against the deterministic vectors of ``fixtures/generate.py``.

The expectations in ``fixtures/generated/expected.json`` were computed by the generator
(payload digests from the bytes it signed, key IDs from its own keys), never by mfkit.
"""

from __future__ import annotations

import datetime

import base64
import hashlib
import json

import pytest

import mfkit
from fixtures import generate as gen
from fixtures.signer import Signer, ec_key, key_id, sign
from tests.conftest import CORPUS, FIXTURES

GENERATED = FIXTURES / "generated"
EXPECTED: dict = json.loads((GENERATED / "expected.json").read_text("utf-8"))
SAMPLE = CORPUS / "libtrust-sample"


NOW = datetime.datetime(2026, 12, 3, tzinfo=datetime.timezone.utc)


def _analyze(name: str) -> mfkit.Analysis:
    exp = EXPECTED[name]
    raw = (GENERATED / f"{name}.json").read_bytes()
    # "now" is passed in, never read by the analysis: a fixed day keeps the vectors stable.
    return mfkit.analyze(mfkit.Response(source=f"generated/{name}.json", body=raw, reference=exp.get("reference")),
                         now=NOW)


def _codes(a: mfkit.Analysis) -> set[str]:
    return {f.code for f in a.findings}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_verified(name: str) -> None:
    want = EXPECTED[name]["verified"]
    got = _analyze(name).verified
    if isinstance(want, list):
        assert got in want, f"{name}: verified={got!r}, expected one of {want}"
    else:
        assert got is want, f"{name}: verified={got!r}, expected {want!r}"


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items()
                                        if not isinstance(e["verified"], list) and e["verified"] is not None
                                        and e["payload_recoverable"]))
def test_payload_digest(name: str) -> None:
    a = _analyze(name)
    assert a.digests.payload == EXPECTED[name]["digest"]
    if a.verified:
        assert a.digest == EXPECTED[name]["digest"]


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if not e["payload_recoverable"]))
def test_unrecoverable_payload_never_verifies(name: str) -> None:
    assert _analyze(name).verified is not True


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e["key_ids"] is not None))
def test_key_ids(name: str) -> None:
    a = _analyze(name)
    assert sorted(s.key_id for s in a.signatures if s.key_id) == EXPECTED[name]["key_ids"]


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e["findings"]))
def test_required_findings(name: str) -> None:
    a = _analyze(name)
    missing = sorted(set(EXPECTED[name]["findings"]) - _codes(a))
    assert not missing, f"{name}: missing {missing}; mfkit gave {sorted(_codes(a))}"


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if "signatures" in e))
def test_signature_details(name: str) -> None:
    a = _analyze(name)
    wants = EXPECTED[name]["signatures"]
    assert len(a.signatures) == len(wants)
    for got, want in zip(a.signatures, wants):
        for field, value in want.items():
            if field == "error_contains":
                assert got.error and value in got.error, (name, got.error)
            else:
                assert getattr(got, field) == value, (name, field, getattr(got, field), value)


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e.get("ok")))
def test_clean_vectors_have_no_error(name: str) -> None:
    a = _analyze(name)
    assert a.ok, [f for f in a.findings if f.severity == "error"]


def test_json_defects_are_errors() -> None:
    for name in ("json-bom", "json-nan-in-payload", "json-invalid-utf8-in-payload", "json-trailing-data"):
        a = _analyze(name)
        assert not a.ok
        for code in EXPECTED[name]["findings"]:
            assert any(f.code == code and f.severity == "error" for f in a.findings), (name, code)


def test_generator_reproduces_checked_in_files() -> None:
    assert gen.check() == []


def test_generator_layout_equals_signer() -> None:
    """The generator's own layout code reproduces fixtures.signer byte for byte."""
    p = gen.base_payload()
    es, rs = Signer(ec_key(1)), Signer(gen.rsa_key(2048))
    assert gen.assemble(p, [gen.entry(es, p)]) == sign(p, [es], gen.SIGN_TIME)
    two = sorted([gen.entry(rs, p), gen.entry(es, p)], key=lambda e: (gen.kid_from_jwk(e["header"]["jwk"]),
                                                                     e["signature"]))
    assert gen.assemble(p, two) == sign(p, [rs, es], gen.SIGN_TIME)


# --------------------------------------------------------------------------- libtrust sample agreement

def _sample_index() -> list[dict]:
    if not SAMPLE.is_dir():
        pytest.skip(f"libtrust sample not found at {SAMPLE} (set MFKIT_SHARED)")
    return [json.loads(line) for line in (SAMPLE / "meta" / "index.jsonl").read_text().splitlines() if line.strip()]


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _slice_payload(raw: bytes) -> bytes:
    """Spec §1.3 by plain byte slicing, from the first signature's protected header."""
    prot = json.loads(_b64url(json.loads(raw)["signatures"][0]["protected"]))
    return raw[: prot["formatLength"]] + _b64url(prot["formatTail"])


@pytest.mark.parametrize("pick", ["p256", "rsa2048", "x5c-p256", "multi"])
def test_resigned_sample_agrees(pick: str) -> None:
    row = next(r for r in _sample_index() if r["profile"] == pick)
    raw = (SAMPLE / "signed" / row["file"]).read_bytes()
    payload = _slice_payload(raw)
    # (b) the sliced payload is what libtrust signed
    assert "sha256:" + hashlib.sha256(payload).hexdigest() == row["digest"]
    # (a) re-signed with generator keys, mfkit's key IDs equal the generator's
    signers = [Signer(ec_key(1)), Signer(gen.rsa_key(2048))]
    a = mfkit.analyze_bytes(sign(payload, signers, gen.SIGN_TIME))
    assert a.verified is True
    assert sorted(s.key_id for s in a.signatures) == sorted(key_id(s.private_key.public_key()) for s in signers)
    assert a.digests.payload == row["digest"]


def test_sample_key_ids_from_generator_code() -> None:
    """(c) the generator's key-ID code, applied to the sample's jwk / x5c leaf, gives index.jsonl's key_ids."""
    for row in _sample_index():
        raw = (SAMPLE / "signed" / row["file"]).read_bytes()
        kids = []
        for sig in json.loads(raw)["signatures"]:
            hdr = sig["header"]
            kids.append(gen.kid_from_x5c(hdr["x5c"]) if hdr.get("x5c") else gen.kid_from_jwk(hdr["jwk"]))
        assert sorted(kids) == row["key_ids"], row["file"]
        a = mfkit.analyze_bytes(raw)
        assert sorted(s.key_id for s in a.signatures) == row["key_ids"], row["file"]
        assert a.digests.payload == row["digest"] == "sha256:" + hashlib.sha256(_slice_payload(raw)).hexdigest()


def test_chain_fixtures_behave_as_documented() -> None:
    """The x5c chains are what expected.json's ``chain`` notes say (Go VerifyChains rules, spec §1.10)."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    chains = gen.Chains()
    root = x509.load_der_x509_certificate(chains.root)
    at = gen._when(2024)
    for name, exp in EXPECTED.items():
        if "chain" not in exp:
            continue
        doc = json.loads((GENERATED / f"{name}.json").read_bytes())
        certs = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in doc["signatures"][0]["header"]["x5c"]]
        leaf, inter = certs
        inter.verify_directly_issued_by(root)
        leaf.verify_directly_issued_by(inter)
        expired = not (leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc)
        try:
            eku = list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        except x509.ExtensionNotFound:
            eku = None
        eku_ok = eku is None or bool({ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(eku))
        got = "expired" if expired else "ok" if eku_ok else "incompatible key usage"
        assert got == exp["chain"], name
