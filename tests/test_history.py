"""``mfkit history``: docker history rows for schema 1 and schema 2, and the created/signed/fetched timeline."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import orjson
import pytest

import mfkit
from fixtures.signer import build_payload, ec_key, go_json, sign, Signer
from mfkit.analysis.history import build_history, parse_time
from mfkit.cli import app
from typer.testing import CliRunner
from tests.conftest import FIXTURES
from tests.tamper import bitflip as _bitflip, forged as _forged

SEED_HTTP = FIXTURES / "seed" / "harbor-k8s-nginx-1.9.http"
SEED_BODY = FIXTURES / "seed" / "harbor-k8s-nginx-1.9.manifest.json"
EMPTY_GZ = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"


class _Run:
    def __init__(self, code: int, out: bytes, err: bytes) -> None:
        self.returncode, self.stdout, self.stderr = code, out, err


def run(*args: str) -> _Run:
    """The command in this process (typer's runner); the subprocess test below covers the real entry point."""
    res = CliRunner().invoke(app, list(args))
    return _Run(res.exit_code, res.stdout_bytes, res.stderr_bytes or b"")


def seed_expected() -> list[dict]:
    """The seed's v1Compatibility objects in wire order (newest first), read with the json module."""
    doc = json.loads(SEED_BODY.read_bytes())
    return [dict(json.loads(h["v1Compatibility"]), blobSum=f["blobSum"])
            for h, f in zip(doc["history"], doc["fsLayers"])]


def signed(layers, *, created="2018-09-03T09:51:54Z", time="2018-09-03T10:00:00Z", seed=1, edit=None) -> bytes:
    payload = build_payload("test/app", "1.0", layers, created=created)
    if edit is not None:
        doc = json.loads(payload)
        edit(doc)
        payload = go_json(doc, indent="   ").encode()
    return sign(payload, [Signer(ec_key(seed))], time)


def test_seed_history_is_newest_first_like_docker():
    [h] = mfkit.history(str(SEED_HTTP))
    want = seed_expected()
    assert len(h.rows) == 8
    assert [r.id for r in h.rows] == [w["id"] for w in want]
    assert [r.created_by for r in h.rows] == [" ".join(w["container_config"]["Cmd"]) for w in want]
    assert [r.created for r in h.rows] == [w["created"] for w in want]
    assert h.rows[0].created_by.endswith('#(nop) CMD ["nginx" "-g" "daemon off;"]')
    assert h.rows[-1].created_by.startswith("/bin/sh -c #(nop) ADD file:")
    assert h.rows[0].created_by_raw == tuple(want[0]["container_config"]["Cmd"])
    assert [r.blob for r in h.rows] == [w["blobSum"] for w in want]
    assert [r.empty for r in h.rows] == [w["blobSum"] in mfkit.EMPTY_BLOBS for w in want]
    assert [r.index for r in h.oldest_first()] == list(range(8))
    assert h.digest == "sha256:ad6e97e5c2ad173f31428bca04d28930ae962ad4c283f63bb77c96db29c26357"  # spec §1.12
    assert not h.findings  # created < signed == fetched (HTTP Date)


def test_seed_cli_text_and_reverse():
    top, base = seed_expected()[0], seed_expected()[-1]
    out = run("history", str(SEED_HTTP))
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    assert text.index(top["id"][:12]) < text.index(base["id"][:12])
    rev = run("history", "--reverse", str(SEED_HTTP)).stdout.decode()
    assert rev.index(base["id"][:12]) < rev.index(top["id"][:12])


def test_seed_cli_json_sorted_and_stable():
    a, b = run("history", "--json", str(SEED_HTTP)), run("history", "--json", str(SEED_HTTP))
    assert a.returncode == 0 and a.stdout == b.stdout
    [doc] = [orjson.loads(x) for x in a.stdout.splitlines()]
    assert list(doc) == sorted(doc) and list(doc["entries"][0]) == sorted(doc["entries"][0])
    assert [e["id"] for e in doc["entries"]] == [w["id"] for w in seed_expected()]
    rev = orjson.loads(run("history", "--json", "--reverse", str(SEED_HTTP)).stdout)
    assert [e["id"] for e in rev["entries"]] == [w["id"] for w in reversed(seed_expected())]


def test_schema2_history_from_quay_config(corpus):
    manifest = corpus / "public" / "quay-complex.schema2.json"
    config = corpus / "public" / "quay-complex.config.json"
    cfg = json.loads(config.read_bytes())
    layers = json.loads(manifest.read_bytes())["layers"]
    [h] = mfkit.history(str(manifest), config=str(config))
    rows = h.oldest_first()
    assert [r.created_by for r in rows] == [e.get("created_by", "") for e in cfg["history"]]
    assert [r.created for r in rows] == [e["created"] for e in cfg["history"]]
    assert [r.empty_layer for r in rows] == [bool(e.get("empty_layer")) for e in cfg["history"]]
    assert [r.blob for r in rows if not r.empty_layer] == [d["digest"] for d in layers]
    assert [r.size for r in rows if not r.empty_layer] == [d["size"] for d in layers]
    assert all(r.id == "<missing>" for r in rows if r.empty_layer)
    # this copy of the config is not byte-identical to the blob the manifest names: said, not hidden
    assert hashlib.sha256(config.read_bytes()).hexdigest() not in manifest.read_text()
    assert [f.code for f in h.findings] == ["history.config-digest-mismatch"]


def test_schema2_config_found_by_digest(tmp_path):
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2020-01-02T00:00:00Z",
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
                         "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD x in /"},
                                     {"created": "2020-01-02T00:00:00Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]",
                                      "empty_layer": True}]}).encode()
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    layer = "sha256:" + "2" * 64
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                      "size": len(config), "digest": digest},
                           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                       "size": 99, "digest": layer}]}).encode()
    (tmp_path / "config.json").write_bytes(config)
    (tmp_path / "manifest.json").write_bytes(manifest)
    [h] = mfkit.history(str(tmp_path))  # the config blob is matched, not listed on its own
    assert h.config_source.endswith("config.json") and not h.findings
    assert [(r.id, r.blob, r.size, r.empty) for r in h.rows] == [("<missing>", None, 0, True), (layer, layer, 99, False)]
    assert h.rows[0].created_by == '/bin/sh -c #(nop)  CMD ["sh"]'


def test_schema2_without_config_shows_layers(corpus):
    [h] = mfkit.history(str(corpus / "public" / "quay-complex.schema2.json"))
    assert [f.code for f in h.findings] == ["history.config-missing"]
    assert len(h.rows) == len(json.loads((corpus / "public" / "quay-complex.schema2.json").read_bytes())["layers"])


def test_timeline_signed_before_created():
    doc = signed([("sha256:" + "a" * 64, "/bin/sh -c #(nop) ADD f in /")], created="2021-01-01T00:00:00Z",
                 time="2020-06-01T00:00:00Z")
    h = build_history(mfkit.analyze_bytes(doc))
    assert "timeline.signed-before-created" in [f.code for f in h.findings]


def test_timeline_created_backwards_and_fetch_before_signature():
    def older_top(doc):  # the top step claims a time before its parent's
        top = json.loads(doc["history"][0]["v1Compatibility"])
        top["created"] = "2017-01-01T00:00:00.123456789Z"
        doc["history"][0]["v1Compatibility"] = go_json(dict(sorted(top.items())))

    body = signed([("sha256:" + "a" * 64, "base"), ("sha256:" + "b" * 64, "top")], edit=older_top)
    resp = mfkit.Response(source="x", body=body, fetched_at="2018-09-03T09:55:00Z")
    h = build_history(mfkit.analyze(resp))
    codes = {f.code for f in h.findings}
    assert {"timeline.created-backwards", "timeline.fetched-before-signed"} <= codes
    assert [e.event.split(" ")[0] for e in h.timeline] == ["base", "image", "fetched", "signature"]


def test_throwaway_rows_are_empty_layers():
    def throw(doc):
        top = json.loads(doc["history"][0]["v1Compatibility"])
        top["throwaway"] = True
        doc["history"][0]["v1Compatibility"] = go_json(dict(sorted(top.items())))

    body = signed([("sha256:" + "a" * 64, "base"), (EMPTY_GZ, "/bin/sh -c #(nop)  CMD [\"x\"]")], edit=throw)
    h = build_history(mfkit.analyze_bytes(body))
    assert [(r.empty_layer, r.empty) for r in h.rows] == [(True, True), (False, False)]


def test_parse_time_keeps_nanoseconds_and_offsets():
    assert parse_time("2016-05-24T04:16:49.228757773Z") - parse_time("2016-05-24T04:16:49.228757772Z") == 1
    assert parse_time("2016-05-24T06:16:49+02:00") == parse_time("2016-05-24T04:16:49Z")
    assert parse_time("yesterday") is None and parse_time(None) is None


@pytest.mark.parametrize("data", [b"", b"not json", b"{\"schemaVersion\": 1, \"history\": 5}", b"[1,2]"])
def test_bad_inputs_no_traceback(tmp_path, data):
    f = tmp_path / "in.json"
    f.write_bytes(data)
    out = run("history", str(f))
    assert out.returncode in (0, 1, 3) and b"Traceback" not in out.stderr


def test_missing_input_exit_3(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mfkit", "history", str(tmp_path / "nope.json")],
                         capture_output=True, timeout=120)
    assert out.returncode == 3 and b"Traceback" not in out.stderr


# --- defects found in a new-user trial ---

HOSTILE_STEPS = ("\x1b[31mRED\x1b]0;title\x07\x1b[2J\r\x08FAKE VERIFIED", "a\n   trusted: yes")
RAW_CONTROLS = ("\x1b", "\r", "\x08", "\x07", "\x00", "\u202e")


def test_history_terminal_injection_is_escaped(tmp_path):
    f = tmp_path / "x.json"
    f.write_bytes(signed([("sha256:" + "1" * 64, HOSTILE_STEPS[0]), ("sha256:" + "2" * 64, HOSTILE_STEPS[1]
                                                                      + "\u202eevil\x00")],
                         time="2018-09-03T10:00:00Z\x1b[2J\nFORGED: yes"))
    out = run("history", str(f))
    text = out.stdout.decode()
    assert not any(c in text for c in RAW_CONTROLS), text
    assert "\\x1b[31mRED\\x1b]0;title\\x07\\x1b[2J\\x0d\\x08FAKE VERIFIED" in text
    assert "a\\x0a   trusted: yes\\u202eevil\\x00" in text
    lines = text.splitlines()
    assert not any(line.lstrip().startswith(("trusted:", "FAKE", "FORGED")) for line in lines), text
    assert sum(1 for line in lines if "sha256:1111" in line or "sha256:2222" in line) == 2  # one row per entry
    assert "(2 entries, newest first)" in text


def test_history_shows_signature_verdict_and_exit_code(tmp_path):
    good = signed([("sha256:" + "1" * 64, "base"), ("sha256:" + "2" * 64, "app")])
    files = {"good": good, "bitflip": _bitflip(good), "forged": _forged(good)}
    for name, data in files.items():
        (tmp_path / f"{name}.json").write_bytes(data)
    res = run("history", str(tmp_path / "good.json"))
    assert res.returncode == 0 and "signature: VERIFIED\n" in res.stdout.decode()
    res = run("history", str(tmp_path / "bitflip.json"))
    assert res.returncode == 1 and "signature: NOT VERIFIED" in res.stdout.decode()
    assert "jws.signature-invalid" in res.stdout.decode()
    res = run("history", str(tmp_path / "forged.json"))
    assert res.returncode == 1 and "unsigned content present" in res.stdout.decode()
    res = run("history", "--json", str(tmp_path / "good.json"), str(tmp_path / "bitflip.json"),
              str(tmp_path / "forged.json"))
    assert res.returncode == 1
    docs = [orjson.loads(line) for line in res.stdout.splitlines()]
    assert [(d["verified"], d["trusted"], d["ok"]) for d in docs] == [(True, None, True), (False, None, False),
                                                                       (True, None, False)]
    assert "unsigned content present" in docs[2]["signature"]
    unsigned = json.dumps({"schemaVersion": 1, "name": "a/b", "tag": "1", "architecture": "amd64",
                           "fsLayers": [{"blobSum": "sha256:" + "1" * 64}],
                           "history": [{"v1Compatibility": json.dumps({"id": "a" * 64})}]}).encode()
    (tmp_path / "unsigned.json").write_bytes(unsigned)
    res = run("history", str(tmp_path / "unsigned.json"))
    assert "signature: unsigned" in res.stdout.decode()
    assert "VERIFIED" in (CliRunner().invoke(app, ["history", "--help"]).output)


def test_history_singular_entry():
    h = build_history(mfkit.analyze_bytes(signed([("sha256:" + "1" * 64, "base")])))
    from mfkit.report_views import render_history_text
    assert "(1 entry, newest first)" in render_history_text(h)
