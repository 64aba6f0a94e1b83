"""Property tests: mutate genuine signed manifests and hold mfkit to three promises.

1. ``analyze_bytes`` never raises and always returns an :class:`mfkit.Analysis`.
2. It never reports ``verified is True`` for bytes whose rebuilt payload is not the payload
   that was originally signed.
3. When it does report ``verified is True``, ``digests.payload`` is the sha256 of that
   originally signed payload.

"Originally signed payload" is computed here without mfkit: ``raw[:formatLength] +
formatTail`` from the seed's own protected header (spec §1.3).

The default run is small (``make test``); ``make fuzz`` runs the ``slow`` variant with
10,000+ examples. Robustness tests at the end feed hostile inputs (nesting bombs, a 5 MB
manifest, parent cycles, truncations) to both the library and the CLI.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mfkit
from fixtures import generate as gen
from fixtures.signer import Signer, build_payload, ec_key, go_json, sign
from tests.conftest import CORPUS, FIXTURES, ROOT

SEED_FILE = FIXTURES / "seed" / "harbor-k8s-nginx-1.9.manifest.json"
SAMPLE_FILES = ("00001-p256.json", "00002-rsa2048.json", "00003-multi.json", "00006-p384.json",
                "00020-p521.json", "00022-x5c-p256.json")
GENERATED_FILES = ("valid-es256-p256.json", "valid-rs256-rsa2048.json", "valid-two-signatures-rs256-es384.json",
                   "valid-es256-compact-layout.json", "x5c-rsa-leaf-no-eku.json")


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Seed:
    """A genuine signed document and, computed independently, what it signs."""

    def __init__(self, label: str, raw: bytes) -> None:
        self.label, self.raw = label, raw
        doc = json.loads(raw)
        prot = json.loads(_b64url(doc["signatures"][0]["protected"]))
        self.fl: int = prot["formatLength"]
        self.tail: bytes = _b64url(prot["formatTail"])
        self.payload = raw[: self.fl] + self.tail
        self.digest = "sha256:" + hashlib.sha256(self.payload).hexdigest()
        self.members = list(json.loads(raw, object_pairs_hook=list))


def _load_seeds() -> list[Seed]:
    seeds = [Seed("seed", SEED_FILE.read_bytes())]
    sample = CORPUS / "libtrust-sample" / "signed"
    seeds += [Seed(f"sample/{f}", (sample / f).read_bytes()) for f in SAMPLE_FILES if (sample / f).is_file()]
    generated = FIXTURES / "generated"
    seeds += [Seed(f"generated/{f}", (generated / f).read_bytes()) for f in GENERATED_FILES
              if (generated / f).is_file()]
    return seeds


SEEDS = _load_seeds()


def test_seeds_verify() -> None:
    """The starting points are genuine: every one verifies with its independent digest."""
    if len(SEEDS) < 1 + len(GENERATED_FILES):
        pytest.skip("generated vectors missing: run python fixtures/generate.py")
    for s in SEEDS:
        a = mfkit.analyze_bytes(s.raw)
        assert a.verified is True, s.label
        assert a.digests.payload == s.digest, s.label


# --------------------------------------------------------------------------- mutations

_TOKENS = [b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b" ", b"\n", b"\t", b"\r", b"0", b"-1", b"1e9",
           b"null", b"true", b"NaN", b"\xef\xbb\xbf", b"\xff", b"\xc3", b'"signatures"', b'"signatures": []',
           b'"fsLayers": [],', b'"FSLayers": [{"blobSum": "sha256:00"}],', "\u017f".encode(), "\u212a".encode(),
           b"=", b"==", b"+", b"/", b"A"]


def _flip(raw: bytes, draw) -> bytes:
    if not raw:
        return raw
    i = draw(st.integers(0, len(raw) - 1))
    return raw[:i] + bytes([raw[i] ^ draw(st.integers(1, 255))]) + raw[i + 1:]


def _insert(raw: bytes, draw) -> bytes:
    i = draw(st.integers(0, len(raw)))
    blob = draw(st.one_of(st.sampled_from(_TOKENS), st.binary(min_size=1, max_size=16)))
    return raw[:i] + blob + raw[i:]


def _delete(raw: bytes, draw) -> bytes:
    if not raw:
        return raw
    i = draw(st.integers(0, len(raw) - 1))
    n = draw(st.integers(1, 64))
    return raw[:i] + raw[i + n:]


def _splice_self(raw: bytes, draw) -> bytes:
    """Copy a range of the document somewhere else in it."""
    if len(raw) < 2:
        return raw
    i = draw(st.integers(0, len(raw) - 1))
    n = draw(st.integers(1, 256))
    j = draw(st.integers(0, len(raw)))
    return raw[:j] + raw[i:i + n] + raw[j:]


def _truncate(raw: bytes, draw) -> bytes:
    return raw[: draw(st.integers(0, len(raw)))]


def _reindent(raw: bytes, draw) -> bytes:
    try:
        doc = json.loads(raw, object_pairs_hook=lambda p: dict(p))
    except ValueError:
        return raw
    indent = draw(st.sampled_from([None, 0, 1, 2, 3, 4, "\t"]))
    return go_json(doc, indent=indent if not isinstance(indent, int) else " " * indent).encode()


def _reorder_payload(seed: Seed, raw: bytes, draw) -> bytes:
    """Re-serialize the payload with its top-level members permuted; keep the original signature block."""
    if raw[: seed.fl] != seed.raw[: seed.fl]:
        return raw
    pairs = json.loads(seed.payload, object_pairs_hook=list)
    order = draw(st.permutations(range(len(pairs))))
    text = go_json(dict(pairs[k] for k in order), indent=draw(st.sampled_from(["   ", "  ", ""])) or None).encode()
    fl = len(text[:-1].rstrip(b" \t\r\n"))
    return text[:fl] + raw[seed.fl:]


def _duplicate_member(seed: Seed, raw: bytes, draw) -> bytes:
    """Insert a copy of one top-level member (maybe with other content) at the start or after formatLength."""
    key, value = draw(st.sampled_from(seed.members))
    if draw(st.booleans()):
        value = draw(st.sampled_from([[], None, 0, "x", {"blobSum": "sha256:" + "f" * 64}]))
    member = json.dumps(key, ensure_ascii=False).encode() + b": " + json.dumps(value, ensure_ascii=False).encode()
    if draw(st.booleans()):
        at = raw.find(b"{") + 1
        return raw[:at] + member + b"," + raw[at:]
    return _after_fl(seed, raw, member + b",")


def _after_fl(seed: Seed, raw: bytes, blob: bytes) -> bytes:
    at = seed.fl + 1 if raw[seed.fl:seed.fl + 1] == b"," else seed.fl
    return raw[:at] + blob + raw[at:]


_AFTER_FL = st.one_of(
    st.sampled_from([b'\n   "fsLayers": [{"blobSum": "sha256:' + b"e" * 64 + b'"}],', b'"tag": "evil",',
                     b'"schemaVersion": 2,', b' ', b'\n\n', b'"x": {"y": [1, 2, 3]},', b'"signatures": [],',
                     b'"signatures": 1,', b'"hi\xc5\xbftory": [],']),
    st.binary(max_size=24))


def _insert_after_fl(seed: Seed, raw: bytes, draw) -> bytes:
    return _after_fl(seed, raw, draw(_AFTER_FL))


_PLAIN = [_flip, _insert, _delete, _splice_self, _truncate, _reindent]
_SEEDED = [_reorder_payload, _duplicate_member, _insert_after_fl]


@st.composite
def mutants(draw) -> tuple[Seed, bytes, list[str]]:
    seed = draw(st.sampled_from(SEEDS))
    raw, steps = seed.raw, []
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(_PLAIN + _SEEDED))
        raw = op(seed, raw, draw) if op in _SEEDED else op(raw, draw)
        steps.append(op.__name__)
    return seed, raw, steps


def _check(seed: Seed, raw: bytes) -> None:
    a = mfkit.analyze_bytes(raw, source="fuzz")  # (1) any exception fails the test
    assert isinstance(a, mfkit.Analysis)
    json.dumps(a.to_dict())  # the --json view must be serializable too
    if a.verified is True:
        # (2) only the originally signed payload can verify; (3) and its digest is reported
        assert a.payload == seed.payload
        assert raw[: seed.fl] == seed.raw[: seed.fl]
        assert a.digests.payload == seed.digest
        assert a.digest == seed.digest
    if raw[: seed.fl] != seed.raw[: seed.fl] and a.payload is not None and a.payload != seed.payload:
        assert a.verified is not True


_FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large])
_SLOW = settings(max_examples=12_000, deadline=None, suppress_health_check=list(HealthCheck))


@_FAST
@given(mutants())
def test_mutants_fast(case: tuple[Seed, bytes, list[str]]) -> None:
    seed, raw, _ = case
    _check(seed, raw)


@pytest.mark.slow
@_SLOW
@given(mutants())
def test_mutants_slow(case: tuple[Seed, bytes, list[str]]) -> None:
    seed, raw, _ = case
    _check(seed, raw)


@_FAST
@given(st.sampled_from(SEEDS), _AFTER_FL)
def test_after_format_length_never_changes_payload(seed: Seed, blob: bytes) -> None:
    """Content inserted after the signed range may still verify, but only as the original payload,
    and anything beyond whitespace is reported as unsigned."""
    raw = _after_fl(seed, seed.raw, blob)
    a = mfkit.analyze_bytes(raw)
    if a.verified is True:
        assert a.digests.payload == seed.digest
        if blob.strip(b" \t\r\n,"):
            assert "jws.unsigned-content" in {f.code for f in a.findings}, blob


@_FAST
@given(st.sampled_from(SEEDS), st.data())
def test_resigned_reordered_payload_verifies_as_itself(seed: Seed, data: st.DataObject) -> None:
    """Key reordering then re-signing: verified, with the new payload's digest (not the seed's)."""
    pairs = [p for p in json.loads(seed.payload, object_pairs_hook=list)]
    order = data.draw(st.permutations(range(len(pairs))))
    payload = go_json(dict(pairs[k] for k in order), indent="   ").encode()
    raw = sign(payload, [Signer(ec_key(7))], gen.SIGN_TIME)
    a = mfkit.analyze_bytes(raw)
    assert a.verified is True
    assert a.digests.payload == "sha256:" + hashlib.sha256(payload).hexdigest()


# --------------------------------------------------------------------------- robustness

def _signed(payload: bytes) -> bytes:
    return sign(payload, [Signer(ec_key(1))], gen.SIGN_TIME)


def _big_manifest(n: int = 5000) -> bytes:
    """A signed manifest of about 5 MB with ``n`` fsLayers/history entries."""
    layers = [(f"sha256:{hashlib.sha256(str(i).encode()).hexdigest()}", f"RUN step {i} " + "x" * 700)
              for i in range(n)]
    return _signed(build_payload("big/image", "huge", layers))


def _cycle_manifest(n: int, back_to: int = 0) -> bytes:
    """History whose parent links form a cycle: the last entry names entry ``back_to`` as its parent."""
    ids = [hashlib.sha256(f"cycle {i}".encode()).hexdigest() for i in range(n)]
    history = []
    for i in range(n):  # wire order: index 0 is the top
        entry = {"id": ids[i], "parent": ids[i + 1] if i + 1 < n else ids[back_to], "created": gen.CREATED,
                 "container_config": {"Cmd": [f"step {i}"]}}
        history.append({"v1Compatibility": go_json(entry)})
    doc = {"schemaVersion": 1, "name": "cycle/image", "tag": "loop", "architecture": "amd64",
           "fsLayers": [{"blobSum": gen.EMPTY_GZ}] * n, "history": history}
    return _signed(go_json(doc, indent="   ").encode())


def _hostile_inputs() -> dict[str, bytes]:
    seed = SEED_FILE.read_bytes()
    generated = FIXTURES / "generated"
    out = {
        "empty.json": b"",
        "whitespace.json": b" \n\t",
        "truncated-1.json": seed[:1],
        "truncated-half.json": seed[: len(seed) // 2],
        "truncated-before-last-brace.json": seed[:-1],
        "bomb-arrays.json": b"[" * 2_000_000,
        "bomb-objects.json": b'{"a":' * 400_000,
        "bomb-in-signatures.json": b'{"schemaVersion":1,"signatures":' + b"[" * 1_000_000,
        "bomb-in-v1compat.json": _signed(build_payload("deep/v1", "x", [(gen.EMPTY_GZ, "x")]).replace(
            b'"os\\":\\"linux\\"', b'"os\\":' + b"[" * 200_000 + b"1" + b"]" * 200_000)),
        "cycle-3.json": _cycle_manifest(3),
        "cycle-2000.json": _cycle_manifest(2000),
        "self-parent.json": _cycle_manifest(1),
        "cycle-mid.json": _cycle_manifest(4, back_to=2),
    }
    for name in ("format-length-negative", "format-length-fractional", "format-length-huge", "format-length-zero",
                 "protected-not-json", "signatures-object", "signatures-number", "signatures-string"):
        path = generated / f"{name}.json"
        if path.is_file():
            out[path.name] = path.read_bytes()
    return out


HOSTILE = _hostile_inputs()


# Correctly signed, but the signed content itself is hostile: they may verify.
SIGNED_BUT_BROKEN = {"bomb-in-v1compat.json", "cycle-3.json", "cycle-2000.json", "self-parent.json", "cycle-mid.json"}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_library(name: str) -> None:
    a = mfkit.analyze_bytes(HOSTILE[name], source=name)
    assert isinstance(a, mfkit.Analysis)
    if name not in SIGNED_BUT_BROKEN:
        assert a.verified is not True
    assert not a.ok
    assert a.findings, "a hostile input must produce findings"
    json.dumps(a.to_dict())


@pytest.mark.parametrize("name", ["cycle-3.json", "cycle-2000.json", "self-parent.json", "cycle-mid.json"])
def test_parent_cycles_are_reported(name: str) -> None:
    """A parent chain that loops back is a cycle (spec §3.4: detect cycles), not only a base with a parent."""
    a = mfkit.analyze_bytes(HOSTILE[name], source=name)
    assert "chain.cycle" in {f.code for f in a.findings}, [f.code for f in a.findings]


def test_big_manifest_library() -> None:
    raw = _big_manifest()
    assert len(raw) > 5_000_000
    a = mfkit.analyze_bytes(raw)
    assert a.verified is True
    assert a.manifest is not None and a.manifest.fs_layers_count == 5000


def test_cli_on_hostile_files(tmp_path: Path) -> None:
    """One CLI run over every hostile file: exit 1 or 3, no traceback, one JSON line each."""
    paths = []
    for name, data in sorted(HOSTILE.items()):
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(str(path))
    proc = subprocess.run([sys.executable, "-m", "mfkit", "analyze", "--json", *paths], cwd=ROOT,
                          capture_output=True, timeout=600)
    assert "Traceback" not in proc.stderr.decode("utf-8", "replace"), proc.stderr[-2000:]
    assert proc.returncode in (1, 3), (proc.returncode, proc.stderr[-2000:])
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == len(paths)
    for line in lines:
        if Path(line.get("source", "")).name not in SIGNED_BUT_BROKEN:
            assert line.get("verified") is not True, line.get("source")


def test_cli_on_each_kind_of_failure(tmp_path: Path) -> None:
    """Separate runs: an empty file, a nesting bomb, a bad formatLength and a parent cycle each exit 1 or 3."""
    for name in ("empty.json", "bomb-arrays.json", "format-length-negative.json", "cycle-3.json"):
        if name not in HOSTILE:
            continue
        path = tmp_path / name
        path.write_bytes(HOSTILE[name])
        proc = subprocess.run([sys.executable, "-m", "mfkit", "analyze", "--json", str(path)], cwd=ROOT,
                              capture_output=True, timeout=300)
        assert "Traceback" not in proc.stderr.decode("utf-8", "replace"), (name, proc.stderr[-2000:])
        assert proc.returncode in (1, 3), (name, proc.returncode)


def test_cli_on_big_manifest(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(_big_manifest())
    proc = subprocess.run([sys.executable, "-m", "mfkit", "analyze", "--json", str(path)], cwd=ROOT,
                          capture_output=True, timeout=600)
    assert "Traceback" not in proc.stderr.decode("utf-8", "replace")
    assert proc.returncode in (0, 1)
    assert json.loads(proc.stdout)["verified"] is True
