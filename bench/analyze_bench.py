"""Analyze throughput, single process: full analysis (parse, payload, verify, chain, dedupe).

Generates >= 1,000 signed schema 1 manifests per key type with the deterministic signer
in fixtures/, then times ``mfkit.analyze`` over each set and over the mixed set.

Reference (no libtrust binary here; measured on this 2-core machine and given with the
task): Go libtrust ParsePrettySignature + Verify alone, ~2,700/s on all-P-256 (~365 us
each) and ~1,000/s on a mixed corpus.  Targets: >= 2x on P-256, >= 3x on the mix.

    .venv/bin/python bench/analyze_bench.py [--per-type 1000] [--keys 16]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fixtures.signer import Signer, build_payload, ec_key, sign  # noqa: E402

import mfkit  # noqa: E402
from mfkit.core import keys as _keys  # noqa: E402
from mfkit.core.jsonstrict import loads_strict  # noqa: E402
from mfkit.core.jws import open_envelope, open_envelope_fast  # noqa: E402

REF_P256 = 2700.0
REF_MIX = 1000.0


def _cert(subject_key, issuer_key, name: str, issuer: str, ca: bool) -> x509.Certificate:
    start = dt.datetime(2018, 1, 1, tzinfo=dt.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
         .public_key(subject_key.public_key()).serial_number(int(hashlib.sha256(name.encode()).hexdigest()[:16], 16))
         .not_valid_before(start).not_valid_after(start + dt.timedelta(days=3650))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    return b.sign(issuer_key, hashes.SHA256())


def _chain(leaf_key, n: int) -> list[bytes]:
    from cryptography.hazmat.primitives.serialization import Encoding
    root = ec_key(900 + n, "P-384")
    inter = ec_key(800 + n, "P-256")
    c_inter = _cert(inter, root, f"bench-inter-{n}", f"bench-root-{n}", True)
    c_leaf = _cert(leaf_key, inter, f"bench-leaf-{n}", f"bench-inter-{n}", False)
    return [c_leaf.public_bytes(Encoding.DER), c_inter.public_bytes(Encoding.DER)]


def signer_sets(nkeys: int) -> dict[str, list[list[Signer]]]:
    rsa2k = [rsa.generate_private_key(65537, 2048) for _ in range(max(2, nkeys // 4))]
    rsa4k = [rsa.generate_private_key(65537, 4096) for _ in range(2)]
    p256 = [ec_key(i, "P-256") for i in range(nkeys)]
    return {
        "p256": [[Signer(k)] for k in p256],
        "p384": [[Signer(ec_key(i, "P-384"))] for i in range(nkeys)],
        "p521": [[Signer(ec_key(i, "P-521"))] for i in range(nkeys)],
        "rsa2048": [[Signer(k)] for k in rsa2k],
        "rsa4096": [[Signer(k)] for k in rsa4k],
        "x5c-p256": [[Signer(k, x5c=_chain(k, i))] for i, k in enumerate(p256[: max(2, nkeys // 4)])],
        "multi": [[Signer(p256[i]), Signer(rsa2k[i % len(rsa2k)])] for i in range(max(2, nkeys // 4))],
    }


def corpus(signers: list[list[Signer]], n: int, label: str) -> list[bytes]:
    docs = []
    for i in range(n):
        layers = [(f"sha256:{hashlib.sha256(f'{label}{i}-{j}'.encode()).hexdigest()}", f"/bin/sh -c step {j}")
                  for j in range(6)]
        payload = build_payload(f"bench/{label}", f"v{i}", layers)
        docs.append(sign(payload, signers[i % len(signers)], "2018-09-03T09:53:49Z"))
    return docs


def verify_rate(docs: list[bytes]) -> float:
    """Parse + verify only: the same scope as the libtrust reference (payload rebuilt, every signature checked)."""
    t0 = time.perf_counter()
    for raw in docs:
        env = open_envelope_fast(raw)
        if env is None:
            env = open_envelope(raw, loads_strict(raw)[0])
        if not env.verified:
            raise SystemExit("benchmark corpus failed to verify")
    return len(docs) / (time.perf_counter() - t0)


def rate(docs: list[bytes], cold_keys: bool) -> float:
    t0 = time.perf_counter()
    for raw in docs:
        if cold_keys:
            _keys._jwk_cached.cache_clear()
        a = mfkit.analyze(mfkit.Response(source="bench", body=raw))
        if a.verified is not True:
            raise SystemExit(f"benchmark corpus failed to verify: {[s.error for s in a.signatures]}")
    return len(docs) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-type", type=int, default=1000)
    ap.add_argument("--keys", type=int, default=16)
    args = ap.parse_args()
    print(f"generating {args.per_type} signed manifests per key type ...", file=sys.stderr)
    sets = {label: corpus(s, args.per_type, label) for label, s in signer_sets(args.keys).items()}
    mixed = [d for i in range(args.per_type) for d in (docs[i] for docs in sets.values())]
    print(f"{'corpus':<10} {'docs':>6} {'verify/s':>10} {'analyze/s':>10} {'cold keys/s':>12}   (analyze = full analysis)")
    results = {}
    for label, docs in list(sets.items()) + [("mixed", mixed)]:
        rate(docs[:200], False)  # warm-up
        ver, warm, cold = verify_rate(docs), rate(docs, False), rate(docs, True)
        results[label] = (ver, warm, cold)
        print(f"{label:<10} {len(docs):>6} {ver:>10.0f} {warm:>10.0f} {cold:>12.0f}")
    print(f"\nvs Go libtrust parse+verify reference ({REF_P256:.0f}/s P-256, {REF_MIX:.0f}/s mixed), same process:")
    for label, ref, target in (("p256", REF_P256, 2), ("mixed", REF_MIX, 3)):
        ver, warm, cold = results[label]
        print(f"  {label:<6} parse+verify {ver / ref:.2f}x | full analysis {warm / ref:.2f}x "
              f"(keys cached), {cold / ref:.2f}x (every key rebuilt) | target full analysis >= {target}x")


if __name__ == "__main__":
    main()
