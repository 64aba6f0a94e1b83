"""Chain anomalies: each one is a finding, none of them crashes (spec §3.4 rules 2-6)."""

from __future__ import annotations

import json

import mfkit


def _id(n: int) -> str:
    return f"{n:064x}"


def unsigned(ids, parents, blobs=None, fs_count=None) -> bytes:
    """An unsigned schema 1 document with the given ids/parents (index 0 = top)."""
    blobs = blobs or [f"sha256:{i + 1:064x}" for i in range(len(ids))]
    fs = [{"blobSum": b} for b in blobs][: fs_count if fs_count is not None else len(blobs)]
    hist = []
    for v1, parent in zip(ids, parents):
        entry = {"id": v1, "created": "2020-01-01T00:00:00Z", "container_config": {"Cmd": ["/bin/sh -c step"]}}
        if parent:
            entry["parent"] = parent
        hist.append({"v1Compatibility": json.dumps(entry)})
    doc = {"schemaVersion": 1, "name": "t/chain", "tag": "x", "architecture": "amd64", "fsLayers": fs, "history": hist}
    return json.dumps(doc, indent=3).encode()


def codes(doc) -> set[str]:
    return {f.code for f in doc.findings}


def test_good_chain_has_no_findings():
    doc = mfkit.analyze_bytes(unsigned([_id(3), _id(2), _id(1)], [_id(2), _id(1), None]))
    assert doc.kind == "schema1-unsigned" and doc.verified is None
    assert doc.chain.ok and doc.chain.order == (_id(3), _id(2), _id(1)) and not doc.findings
    assert list(doc.chain.graph.edges) == [(_id(1), _id(2)), (_id(2), _id(3))]


def test_count_mismatch_between_fslayers_and_history():
    doc = mfkit.analyze_bytes(unsigned([_id(2), _id(1)], [_id(1), None], fs_count=1))
    assert "chain.count-mismatch" in codes(doc) and not doc.ok


def test_zero_layers():
    doc = mfkit.analyze_bytes(unsigned([], []))
    assert "chain.empty" in codes(doc) and doc.chain.order == ()


def test_invalid_id_is_reported_with_its_path():
    doc = mfkit.analyze_bytes(unsigned(["../../etc", _id(1)], [_id(1), None]))
    [f] = [f for f in doc.findings if f.code == "chain.invalid-id"]
    assert f.where == "$.history[0].v1Compatibility.id"


def test_broken_parent_link():
    doc = mfkit.analyze_bytes(unsigned([_id(3), _id(2), _id(1)], [_id(9), _id(1), None]))
    [f] = [f for f in doc.findings if f.code == "chain.broken-parent"]
    assert f.where == "$.history[0].v1Compatibility.parent"


def test_base_layer_with_a_parent():
    doc = mfkit.analyze_bytes(unsigned([_id(2), _id(1)], [_id(1), _id(7)]))
    assert "chain.base-has-parent" in codes(doc) and not doc.chain.ok


def test_consecutive_duplicates_collapse_as_docker_does():
    doc = mfkit.analyze_bytes(unsigned([_id(2), _id(2), _id(1)], [_id(1), _id(1), None]))
    assert doc.chain.order == (_id(2), _id(1)) and doc.chain.collapsed == (0,)
    assert "chain.consecutive-duplicate" in codes(doc) and doc.chain.ok


def test_non_consecutive_duplicate_and_cycle():
    # 3 -> 2 -> 3 -> 1 : id 3 appears twice, parent links loop.
    doc = mfkit.analyze_bytes(unsigned([_id(3), _id(2), _id(3), _id(1)], [_id(2), _id(3), _id(1), None]))
    assert {"chain.duplicate-id", "chain.cycle"} <= codes(doc)
    assert not doc.ok


def test_throwaway_and_empty_blobs_are_counted_apart():
    empty = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
    raw = unsigned([_id(2), _id(1)], [_id(1), None], blobs=[empty, "sha256:" + "ab" * 32])
    doc = mfkit.analyze_bytes(raw)
    assert doc.layers.empty_blobs == {empty: [0]} and doc.layers.empty == 1


def test_garbage_v1compatibility_does_not_crash():
    doc = {"schemaVersion": 1, "fsLayers": [{"blobSum": 5}, "x"], "history": [{"v1Compatibility": "{nope"}, 7]}
    out = mfkit.analyze_bytes(json.dumps(doc).encode())
    assert {"manifest.v1compat-invalid", "manifest.invalid-blobsum"} <= codes(out)
    assert not out.ok
