"""``make demo``: a local Harbor-like registry, ``mfkit fetch`` into ``demo-out/``, then ``mfkit analyze``.

Without docker-registry it says so and analyzes the shipped ``fixtures/`` instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .harness import Harness, HarnessError

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "demo-out"


def _mfkit(args: list[str], stdin: str | None = None) -> int:
    shown = " ".join(["mfkit", *args])
    pipe = 'printf %s "$PASSWORD" | ' if stdin else ""
    print(f"\n$ {pipe}{shown}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "mfkit", *args], input=stdin or "", text=True, cwd=ROOT, env=env)
    return proc.returncode


def main() -> int:
    """Run the demo; returns the exit code."""
    try:
        reg = Harness.start()
    except HarnessError as exc:
        print(f"demo: the local registry could not start ({exc}).\n"
              "demo: analyzing the shipped inputs in fixtures/ instead.", flush=True)
        return _mfkit(["analyze", "fixtures/"])
    codes = []
    try:
        shutil.rmtree(OUT, ignore_errors=True)
        print(f"demo: docker-registry (distribution 2.8.2) on {reg.url}, Harbor-style token service at "
              f"{reg.tokens.realm}; user {reg.username!r}, password passed on stdin only.", flush=True)
        creds = ["-u", reg.username, "--password-stdin"]
        pw = reg.password + "\n"
        # every tag of a repository holding schema1 documents signed with several key types
        codes.append(_mfkit(["fetch", *creds, "-o", "demo-out", "--all-tags", f"{reg.host}/mfkit/schema1"], pw))
        # the seed's situation: a schema2 image asked for with a schema1-only Accept, by tag
        codes.append(_mfkit(["fetch", *creds, "-o", "demo-out", "--accept", "schema1",
                             f"{reg.host}/k8s/nginx:1.9"], pw))
        # the same image as pushed (schema2 + config blob)
        codes.append(_mfkit(["fetch", *creds, "-o", "demo-out", f"{reg.host}/k8s/nginx:latest"], pw))
    finally:
        reg.stop()
    print(f"\ndemo: the registry re-signs schema1 at every GET; its key id is {reg.registry_key_id}", flush=True)
    codes.append(_mfkit(["analyze", "demo-out"]))
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
