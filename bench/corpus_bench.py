"""Corpus throughput and peak memory: N signed schema 1 manifests folded into one corpus.

Documents are made on the fly with the deterministic signer in fixtures/ (a few keys, a few
base chains, so base groups and shared keys form) and streamed to the corpus builder as
bytes: nothing is written to disk and only one document per chunk is alive at a time.

Generation costs time too (signing), so it is timed on its own over a sample and the
corpus-only throughput is reported next to the end-to-end figure.

    .venv/bin/python bench/corpus_bench.py [--n 100000] [--jobs 1] [--keys 4] [--bases 6]
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fixtures.signer import Signer, build_payload, ec_key, sign  # noqa: E402

from mfkit import EMPTY_BLOBS, Response  # noqa: E402
from mfkit.explore import corpus_from  # noqa: E402

EMPTY = sorted(EMPTY_BLOBS)[1]  # a well-known empty blob: skipped when finding the base


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def documents(n: int, nkeys: int, nbases: int) -> Iterator[Response]:
    """``n`` signed manifests: base chain ``i % nbases``, key ``i % nkeys``, one unique top layer each."""
    signers = [Signer(ec_key(1000 + k)) for k in range(nkeys)]
    chains = [[(_digest(f"base-{b}"), f"/bin/sh -c #(nop) ADD file:base{b} in /"),
               (EMPTY, '/bin/sh -c #(nop)  CMD ["sh"]'),
               (_digest(f"deps-{b}"), f"/bin/sh -c apk add deps-{b}")] for b in range(nbases)]
    for i in range(n):
        layers = chains[i % nbases] + [(_digest(f"app-{i}"), f"/bin/sh -c make app-{i}")]
        payload = build_payload(f"bench/app{i % 997}", f"v{i // 997}", layers)
        body = sign(payload, [signers[i % nkeys]], f"2024-01-01T00:{(i // 60) % 60:02d}:{i % 60:02d}Z")
        yield Response(source=f"mem/{i:07d}.json", body=body)


def rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--keys", type=int, default=4)
    ap.add_argument("--bases", type=int, default=6)
    ap.add_argument("--sample", type=int, default=3000, help="documents used to time generation alone")
    args = ap.parse_args()

    sample = min(args.sample, args.n)
    t0 = time.perf_counter()
    for _ in documents(sample, args.keys, args.bases):
        pass
    gen_each = (time.perf_counter() - t0) / sample
    before = rss_mib(resource.RUSAGE_SELF)

    t0 = time.perf_counter()
    result = corpus_from(documents(args.n, args.keys, args.bases), jobs=args.jobs)
    total = time.perf_counter() - t0
    corpus_only = max(total - gen_each * args.n, 1e-9)

    assert len(result.documents) == args.n
    assert len(result.base_groups) == args.bases, result.base_groups[:2]
    assert sorted(v["documents"] for v in result.keys.values()) == sorted(
        len(range(k, args.n, args.keys)) for k in range(args.keys))
    print(f"documents            {args.n}  (jobs {args.jobs}, {args.keys} keys, {args.bases} base chains)")
    print(f"graph                {result.graph.number_of_nodes()} nodes, {result.graph.number_of_edges()} edges")
    print(f"end to end           {total:.1f} s  = {args.n / total:,.0f} docs/s (generation + signing included)")
    print(f"generation alone     {gen_each * 1e6:.0f} us/doc (timed on {sample})")
    print(f"corpus (estimated)   {corpus_only:.1f} s  = {args.n / corpus_only:,.0f} docs/s")
    print(f"peak RSS             {rss_mib(resource.RUSAGE_SELF):.0f} MiB (this process; {before:.0f} MiB before the run)")
    if args.jobs > 1:
        print(f"peak RSS, workers    {rss_mib(resource.RUSAGE_CHILDREN):.0f} MiB (largest worker)")


if __name__ == "__main__":
    main()
