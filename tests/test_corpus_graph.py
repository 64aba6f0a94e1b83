"""``mfkit corpus``: one graph across documents, base groups, reused blobs, keys, tags; --jobs; exports."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import networkx as nx
import orjson
import pytest
from typer.testing import CliRunner

import mfkit
from mfkit.cli import app
from mfkit.explore import corpus_from
from mfkit.inputs import iter_inputs


@pytest.fixture(scope="module")
def sample(corpus) -> Path:
    return corpus / "libtrust-sample"


@pytest.fixture(scope="module")
def index(sample) -> list[dict]:
    return [json.loads(line) for line in (sample / "meta" / "index.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def result(sample):
    return mfkit.corpus(str(sample / "signed"))


def partition(groups) -> set[frozenset[str]]:
    return {frozenset(g) for g in groups}


def raw(sample, name) -> dict:
    return json.loads((sample / "signed" / name).read_bytes())


def test_base_groups_match_index_bases(result, index, sample):
    by_base: dict[str, set[str]] = {}
    for row in index:
        by_base.setdefault(row["base"], set()).add(row["file"])
    assert len(index) == 48
    got = partition({Path(m).name for m in g["members"]} for g in result.base_groups)
    assert got == partition(by_base.values())
    for g in result.base_groups:  # the base is the bottom-most non-empty blobSum, computed here with json
        for m in g["members"]:
            doc = raw(sample, Path(m).name)
            pairs = list(zip(doc["fsLayers"], doc["history"]))[::-1]
            first = next(f["blobSum"] for f, h in pairs
                         if not json.loads(h["v1Compatibility"]).get("throwaway") and f["blobSum"] not in mfkit.EMPTY_BLOBS)
            assert g["base"] == first
    assert all(g["members"] == sorted(g["members"]) for g in result.base_groups)


def test_keys_counted_like_index(result, index):
    want = Counter(k for row in index for k in row["key_ids"])
    assert {k: v["documents"] for k, v in result.keys.items()} == dict(want)
    assert all(v["valid"] == v["documents"] and v["invalid"] == 0 for v in result.keys.values())
    assert {k for k, v in result.keys.items() if v["role"] == "single-use"} == {k for k, n in want.items() if n == 1}


def test_blob_reuse_counts(result, sample):
    want: Counter[str] = Counter()
    for f in sorted((sample / "signed").iterdir()):
        doc = json.loads(f.read_bytes())
        want.update({fs["blobSum"] for fs, h in zip(doc["fsLayers"], doc["history"])
                     if not json.loads(h["v1Compatibility"]).get("throwaway")})
    assert {b: v["documents"] for b, v in result.blobs.items()} == dict(want)
    assert set(result.reused_blobs) == {b for b, n in want.items() if n > 1}


def test_tags_across_captures(result, index):
    captures = Counter(f"{r['name']}:{r['tag']}" for r in index)
    assert {t: len(v["captures"]) for t, v in result.tags.items()} == dict(captures)
    digests: dict[str, set[str]] = {}
    for r in index:
        digests.setdefault(f"{r['name']}:{r['tag']}", set()).add(r["digest"])
    assert {t: v["digests"] for t, v in result.tags.items()} == {t: sorted(d) for t, d in digests.items()}
    assert {t for t, v in result.tags.items() if v["changed"]} == {t for t, d in digests.items() if len(d) > 1}


def test_graph_nodes_are_v1_ids(result, index, sample):
    g = result.graph
    for row in index:
        assert row["top_id"] in g
    assert nx.is_directed_acyclic_graph(g)
    ids = set()
    for f in (sample / "signed").iterdir():
        ids.update(json.loads(h["v1Compatibility"])["id"] for h in json.loads(f.read_bytes())["history"])
    assert set(g.nodes) == ids


def test_jobs_two_equals_jobs_one(sample):
    one = corpus_from(iter_inputs([str(sample / "signed")]), jobs=1, chunk=5)
    two = corpus_from(iter_inputs([str(sample / "signed")]), jobs=2, chunk=5)
    assert orjson.dumps(one.to_dict(), option=orjson.OPT_SORT_KEYS) == orjson.dumps(two.to_dict(), option=orjson.OPT_SORT_KEYS)
    assert sorted(one.graph.edges) == sorted(two.graph.edges)
    assert dict(one.graph.nodes(data=True)) == dict(two.graph.nodes(data=True))


def test_cli_json_exports_and_stability(sample, tmp_path):
    gml, dot = tmp_path / "g.graphml", tmp_path / "g.dot"
    args = ["corpus", "--json", str(sample / "signed"), "--graphml", str(gml), "--dot", str(dot)]
    a = CliRunner().invoke(app, args)
    assert a.exit_code == 0, a.output
    b = CliRunner().invoke(app, ["corpus", "--json", "--jobs", "2", str(sample / "signed")])
    assert a.stdout_bytes == b.stdout_bytes
    doc = orjson.loads(a.stdout_bytes)
    assert list(doc) == sorted(doc) and doc["documents"] == 48
    assert [list(g) for g in doc["base_groups"]] == [["base", "members"]] * len(doc["base_groups"])
    g = nx.read_graphml(gml)
    assert g.number_of_nodes() == doc["graph"]["nodes"] and g.number_of_edges() == doc["graph"]["edges"]
    assert all(d["blob_sum"].startswith("sha256:") for _, d in g.nodes(data=True) if not d.get("missing"))
    text = dot.read_text()
    assert text.startswith("digraph") and text.count(" -> ") == doc["graph"]["edges"]
    assert "base groups (6)" in CliRunner().invoke(app, ["corpus", str(sample / "signed")]).output


def test_unreadable_and_mixed_inputs(corpus, tmp_path):
    (tmp_path / "garbage.json").write_bytes(b"\x00\xff not json")
    res = CliRunner().invoke(app, ["corpus", "--json", str(corpus / "public"), str(tmp_path / "missing")])
    assert res.exit_code == 3
    doc = orjson.loads(res.stdout_bytes)
    assert [u["source"] for u in doc["unreadable"]] == [str(tmp_path / "missing")]


def test_dataframe_and_html(result):
    df = result.to_dataframe()
    assert len(df) == 48 and set(df["base"]) == {g["base"] for g in result.base_groups}
    assert "<table>" in result._repr_html_()


# --- defects found in a new-user trial ---

def _signed(name: str, seed: int, created_by: str = "base") -> bytes:
    from fixtures.signer import Signer, build_payload, ec_key, sign

    return sign(build_payload(name, "1", [("sha256:" + "1" * 64, created_by)]), [Signer(ec_key(seed))],
                "2018-09-03T09:53:49Z")


def _bitflip(doc: bytes) -> bytes:
    i = doc.index(b'"signature": "') + len(b'"signature": "') + 5
    return doc[:i] + (b"A" if doc[i:i + 1] != b"A" else b"B") + doc[i + 1:]


def test_key_role_counts_only_valid_signatures(tmp_path):
    from fixtures.signer import ec_key, key_id

    (tmp_path / "a.json").write_bytes(_signed("team/a", 5))
    (tmp_path / "b.json").write_bytes(_bitflip(_signed("team/b", 5)))  # same key, signature broken
    (tmp_path / "c.json").write_bytes(_bitflip(_signed("team/c", 6)))  # only ever invalid
    c = mfkit.corpus(str(tmp_path))
    k5, k6 = key_id(ec_key(5).public_key()), key_id(ec_key(6).public_key())
    assert c.keys[k5]["documents"] == 2 and c.keys[k5]["valid"] == 1 and c.keys[k5]["invalid"] == 1
    assert c.keys[k5]["role"] == "single-use"
    assert c.keys[k6]["role"] == "no-valid-signature" and c.keys[k6]["invalid"] == 1
    out = CliRunner().invoke(app, ["corpus", str(tmp_path)]).output
    assert f"{k5}  2 documents (1 valid, 1 INVALID)  single-use" in out


def test_corpus_text_plurals_and_escapes(tmp_path):
    (tmp_path / "a.json").write_bytes(_signed("team/\x1b[2Jx", 7, "\x1b]0;t\x07"))
    out = CliRunner().invoke(app, ["corpus", str(tmp_path)]).output
    assert out.startswith("1 document, 0 unreadable; graph: 1 v1 id, 0 edges, 1 root\n"), out
    assert "\x1b" not in out and "\x07" not in out
    assert "(1 valid)" in out and "1 documents" not in out
