"""The command line as a user runs it: exit codes, JSON contract, stdin, folders, bad input."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.conftest import FIXTURES

SEED_HTTP = FIXTURES / "seed" / "harbor-k8s-nginx-1.9.http"
CONTRACT = {"source", "kind", "digest", "digests", "signatures", "verified", "layers", "chain", "findings"}


def mfkit(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mfkit", *args], input=stdin, capture_output=True, timeout=120)


def lines(run) -> list[dict]:
    return [orjson.loads(x) for x in run.stdout.splitlines() if x.strip()]


def test_json_contract_on_the_seed():
    run = mfkit("analyze", "--json", str(SEED_HTTP))
    assert run.returncode == 0, run.stderr
    tags, man = lines(run)
    assert CONTRACT <= set(man)
    assert set(man["digests"]) >= {"body", "payload", "header"}
    assert man["verified"] is True and tags["verified"] is None
    [sig] = man["signatures"]
    assert {"index", "alg", "key_id", "key_source", "valid", "time", "error"} <= set(sig)
    assert {"entries", "unique_blobs", "empty"} <= set(man["layers"])
    assert {"ok", "top", "base", "length"} <= set(man["chain"]) and man["chain"]["length"] == 8
    for line in run.stdout.splitlines():
        assert list(orjson.loads(line)) == sorted(orjson.loads(line)), "keys must be sorted"


def test_json_output_is_byte_identical_between_runs():
    a = mfkit("analyze", "--json", str(FIXTURES / "corpus"))
    b = mfkit("analyze", "--json", str(FIXTURES / "corpus"))
    assert a.stdout == b.stdout and a.stdout


def test_exit_1_when_a_signature_fails():
    run = mfkit("analyze", str(FIXTURES / "corpus" / "moby-bad_manifest.json"))
    assert run.returncode == 1
    assert b"NOT VERIFIED" in run.stdout


def test_exit_1_for_content_outside_the_signed_range_even_though_it_verifies():
    run = mfkit("analyze", "--json", str(FIXTURES / "corpus" / "moby-extra_data_manifest.json"))
    assert run.returncode == 1
    [doc] = lines(run)
    assert doc["verified"] is True
    [f] = [f for f in doc["findings"] if f["code"] == "jws.unsigned-content"]
    assert f["severity"] == "error" and f["where"].startswith("bytes ")


def test_exit_2_on_usage_error():
    assert mfkit("analyze", "--no-such-flag", "x").returncode == 2
    assert mfkit("analyze").returncode == 2


def test_exit_3_and_error_object_for_an_unreadable_input(tmp_path):
    run = mfkit("analyze", "--json", str(tmp_path / "missing.json"), str(SEED_HTTP))
    assert run.returncode == 3
    first = lines(run)[0]
    assert set(first) == {"source", "error"} and first["error"]["code"] == "input.unreadable"
    assert len(lines(run)) == 3  # the readable input is still analyzed


def test_stdin_and_recursive_folders(tmp_path):
    body = (FIXTURES / "seed" / "harbor-k8s-nginx-1.9.manifest.json").read_bytes()
    run = mfkit("analyze", "--json", "-", stdin=body)
    assert run.returncode == 0 and lines(run)[0]["source"] == "-"
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "m.json").write_bytes(body)
    run = mfkit("analyze", "--json", str(tmp_path))
    assert [d["source"] for d in lines(run)] == [str(nested / "m.json")]


@pytest.mark.parametrize("name,data", [
    ("empty-file", b""),
    ("binary-junk", bytes(range(256)) * 4),
    ("bom-prefixed", b"\xef\xbb\xbf{}"),
    ("nan-value", b'{"schemaVersion": NaN}'),
    ("nesting-bomb", b"[" * 200_000),
    ("invalid-utf8", b'{"name": "\xff"}'),
    ("signatures-wrong-type", b'{"schemaVersion":1,"fsLayers":[],"history":[],"signatures":{"a":1}}'),
    ("protected-not-json", b'{"schemaVersion":1,"fsLayers":[],"history":[],"signatures":[{"protected":"bm90IGpzb24","header":{},"signature":""}]}'),
])
def test_bad_input_gives_findings_never_a_traceback(tmp_path, name, data):
    path = tmp_path / f"{name}.json"
    path.write_bytes(data)
    run = mfkit("analyze", "--json", str(path))
    assert run.returncode in (1, 3), (run.returncode, run.stderr)
    assert b"Traceback" not in run.stderr + run.stdout
    [doc] = lines(run)
    assert doc.get("verified") is not True


def test_help_documents_exit_codes():
    run = mfkit("analyze", "--help")
    assert run.returncode == 0
    text = run.stdout.decode()
    for code in ("0 all inputs", "1 a verification failed", "2 usage", "3 an input"):
        assert code in " ".join(text.split())


def test_text_report_prints_document_text_literally_markup_injection():
    doc = b'{"schemaVersion":1,"name":"[bold]x[/var/cache/app] :smile:","fsLayers":[],"history":[]}'
    run = mfkit("analyze", "-", stdin=doc)
    assert run.returncode == 1 and b"Traceback" not in run.stderr
    assert b"[bold]x[/var/cache/app] :smile:" in run.stdout
