"""Benchmark: ``mfkit fetch --all-tags`` against the seed's method, on one local registry.

The seed's method (harbor-session-2018.txt) is a shell loop: for each tag, ask
``/service/token`` for a token with Basic credentials, then GET the manifest with it. mfkit
reuses connections, asks for one token per repository and fetches with 4 threads.

Run: ``python bench/fetch_bench.py [--tags 200]``. Prints both times and the ratio.
Not a test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.registry.harness import Harness, HarnessError  # noqa: E402

ACCEPT = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# the seed's loop; credentials come from a curl config file rather than argv
CURL_LOOP = r"""
set -eu
n=0
while read -r tag; do
  tok=$(curl -s -K "$CRED" "$REALM?account=$ACCOUNT&service=harbor-registry&scope=repository:$REPO:pull" \
        | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  curl -s -o "$OUT/$tag.json" -H "Authorization: Bearer $tok" -H "Accept: $ACCEPT" \
       "$REGISTRY/v2/$REPO/manifests/$tag"
  n=$((n+1))
done < "$TAGS"
echo "$n"
"""


def main() -> int:
    """Run the benchmark; returns an exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=200)
    args = parser.parse_args()
    try:
        reg = Harness.start(seed=False)
    except HarnessError as exc:
        print(f"fetch_bench: skipped, the local registry could not start: {exc}")
        return 0
    repo = "bench/many"
    try:
        t0 = time.perf_counter()
        pushed = reg.push_many(repo, args.tags)
        print(f"pushed {len(pushed)} signed schema1 tags to {reg.host}/{repo} in {time.perf_counter() - t0:.2f}s")
        with tempfile.TemporaryDirectory(prefix="mfkit-bench-") as tmp:
            work = Path(tmp)
            (work / "tags").write_text("".join(f"{p.tag}\n" for p in pushed))
            cred = work / "curl.cfg"
            cred.write_text(f'user = "{reg.username}:{reg.password}"\n')
            cred.chmod(0o600)
            (work / "curl").mkdir()
            env = {**os.environ, "CRED": str(cred), "REALM": reg.tokens.realm, "ACCOUNT": reg.username,
                   "REPO": repo, "OUT": str(work / "curl"), "ACCEPT": ACCEPT, "REGISTRY": reg.url,
                   "TAGS": str(work / "tags")}
            t0 = time.perf_counter()
            loop = subprocess.run(["bash", "-c", CURL_LOOP], env=env, capture_output=True, text=True, timeout=600)
            curl_s = time.perf_counter() - t0
            if loop.returncode != 0:
                print(f"curl loop failed: {loop.stderr[-500:]}")
                return 1
            curl_files = len(list((work / "curl").glob("*.json")))

            out = work / "mfkit"
            t0 = time.perf_counter()
            run = subprocess.run([sys.executable, "-m", "mfkit", "fetch", "-u", reg.username, "--password-stdin",
                                  "--all-tags", "--accept", "schema1", "-o", str(out), f"{reg.host}/{repo}"],
                                 input=reg.password + "\n", capture_output=True, text=True, cwd=ROOT, timeout=600,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
            mfkit_s = time.perf_counter() - t0
            if run.returncode != 0:
                print(f"mfkit fetch failed ({run.returncode}): {run.stdout[-500:]}{run.stderr[-500:]}")
                return 1
            mfkit_files = len(list(out.rglob("manifests/*/*.meta.json")))

            # the same work as a library call (no interpreter start-up, no CLI)
            from mfkit.fetch import FetchOptions, fetch, parse_accept

            opts = FetchOptions(output=work / "lib", all_tags=True, accept=parse_accept("schema1"),
                                username=reg.username, password=reg.password)
            t0 = time.perf_counter()
            summary = fetch([f"{reg.host}/{repo}"], opts)
            lib_s = time.perf_counter() - t0
            lib_files = sum(1 for f in summary.fetched if f.kind == "manifests")
    finally:
        reg.stop()
    print(f"seed method (curl: token + manifest per tag): {curl_files} manifests in {curl_s:.2f}s")
    print(f"mfkit fetch --all-tags (incl. interpreter start, tag list, sidecars): "
          f"{mfkit_files} manifests in {mfkit_s:.2f}s")
    print(f"mfkit.fetch.fetch() in-process (no start-up):                       "
          f"{lib_files} manifests in {lib_s:.2f}s")
    print(f"ratio: {curl_s / mfkit_s:.1f}x for the CLI, {curl_s / lib_s:.1f}x in-process (target >= 5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
