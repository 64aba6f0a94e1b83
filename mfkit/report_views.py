"""Text, JSON, DOT and GraphML renderings of history, corpus and diff results.  Renders to strings/bytes."""

from __future__ import annotations

import io
from typing import Any

import networkx as nx
import orjson

from .analysis.corpus import Corpus
from .analysis.diff import DiffResult
from .analysis.history import History

__all__ = ["json_bytes", "render_history_text", "render_corpus_text", "render_diff_text", "render_dot",
           "render_graphml"]


def json_bytes(obj: dict[str, Any]) -> bytes:
    """One JSON line, keys sorted (byte-identical from run to run)."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) + b"\n"


def _one_line(text: str) -> str:
    # docker history prints tabs as spaces (docker/cli formatter_history.go); newlines too here.
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    n = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{value}B" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return str(value)


def render_history_text(h: History, *, reverse: bool = False, width: int = 0) -> str:
    """``docker history --no-trunc``-like table plus timeline and findings.

    Args:
        h: the history.
        reverse: oldest first.
        width: cut ``created_by`` to this many characters (0: never cut).
    """
    rows = h.oldest_first() if reverse else h.rows
    out = [f"== {h.source}  {h.kind}  {h.digest or '-'}  ({len(rows)} entries, "
           f"{'oldest' if reverse else 'newest'} first)\n"]
    if h.config_source:
        out.append(f"   config: {h.config_source}\n")
    ids = [r.id if r.id.startswith("<") else (r.id[:19] if r.id.startswith("sha256:") else r.id[:12]) for r in rows]
    idw = max([len("ID")] + [len(i) for i in ids])
    out.append(f"   {'ID':<{idw}}  {'CREATED':<30}  {'SIZE':>8}  {'EMPTY':<5}  {'BLOB':<19}  CREATED BY\n")
    for r, i in zip(rows, ids):
        by = _one_line(r.created_by)
        if width and len(by) > width:
            by = by[: width - 1] + "…"
        blob = r.blob[:19] if r.blob else "-"
        out.append(f"   {i:<{idw}}  {(r.created or '-'):<30}  {_size(r.size):>8}  {'yes' if r.empty else '':<5}  "
                   f"{blob:<19}  {by}\n")
    if h.timeline:
        out.append("   timeline\n")
        out += [f"     {e.time:<32} {e.event}\n" for e in h.timeline]
    if h.findings:
        out.append("   findings\n")
        out += [f"     {f.severity:<7} {f.code}: {f.message}" + (f"  [{f.where}]" if f.where else "") + "\n"
                for f in h.findings]
    return "".join(out)


def render_corpus_text(c: Corpus) -> str:
    """Shared bases, reused blobs, signing keys and tags, one section each."""
    g = c.graph
    out = [f"{len(c.documents)} documents, {len(c.unreadable)} unreadable; graph: {g.number_of_nodes()} v1 ids, "
           f"{g.number_of_edges()} edges, {sum(1 for _, d in g.in_degree() if d == 0)} roots\n",
           f"base groups ({len(c.base_groups)}), by bottom-most non-empty blob\n"]
    for grp in c.base_groups:
        out.append(f"  {grp['base'] or '(no content layer)'}  {len(grp['members'])} documents\n")
        out += [f"     {m}\n" for m in grp["members"]]
    reused = c.reused_blobs
    out.append(f"reused blobs ({len(reused)} of {len(c.blobs)})\n")
    for b, v in sorted(reused.items(), key=lambda kv: (-kv[1]["documents"], kv[0])):
        out.append(f"  {b}  {v['documents']} documents{'  (empty content)' if v['empty'] else ''}\n")
    out.append(f"signing keys ({len(c.keys)})\n")
    for k, v in sorted(c.keys.items(), key=lambda kv: (-kv[1]["documents"], kv[0])):
        bad = f", {v['invalid']} invalid" if v["invalid"] else ""
        out.append(f"  {k}  {v['documents']} documents{bad}  {v['role']}  {v['first']} .. {v['last']}  "
                   f"{', '.join(v['repositories'])}\n")
    multi = {t: v for t, v in c.tags.items() if len(v["captures"]) > 1}
    out.append(f"tags captured more than once ({len(multi)} of {len(c.tags)})\n")
    for t, v in multi.items():
        state = "DIFFERENT digests" if v["changed"] else "same digest"
        out.append(f"  {t}  {len(v['captures'])} captures, {state}\n")
        for cap in v["captures"]:
            out.append(f"     {cap['digest']}  signed {','.join(cap['signed']) or '-'}  "
                       f"fetched {cap['fetched_at'] or '-'}  {cap['source']}\n")
    for u in c.unreadable:
        out.append(f"unreadable: {u['source']}: {u['code']}: {u['message']}\n")
    return "".join(out)


def render_diff_text(d: DiffResult) -> str:
    """What changed between two captures."""
    meaning = {"identical": "identical bytes",
               "re-signed": "RE-SIGNED, SAME PAYLOAD (a registry re-signs schema 1 at every GET)",
               "same-payload": "same payload digest",
               "different-image": "A DIFFERENT IMAGE (payload digests differ)"}[d.verdict]
    out = [f"a: {d.a}\nb: {d.b}\nverdict: {meaning}\n",
           f"digest          {d.digest_a}\n             -> {d.digest_b}\n",
           f"sha256(body)    {d.body_a}\n             -> {d.body_b}\n",
           f"payload bytes   {'identical' if d.payload_identical else 'differ'}\n",
           f"signer keys     {', '.join(d.keys_a) or '-'}\n             -> {', '.join(d.keys_b) or '-'}\n",
           f"signature time  {', '.join(d.times_a) or '-'}\n             -> {', '.join(d.times_b) or '-'}\n"]
    for label, items in (("layers added", d.layers_added), ("layers removed", d.layers_removed),
                         ("history added", d.history_added), ("history removed", d.history_removed),
                         ("history changed", d.history_changed)):
        if items:
            out.append(f"{label} ({len(items)})\n")
            out += [f"  {_one_line(i)}\n" for i in items]
    if d.payload_diff:
        out.append("payload diff\n")
        out += [f"  {line}\n" for line in d.payload_diff]
        if d.payload_diff_truncated:
            out.append("  … (diff cut)\n")
    return "".join(out)


def _dot_id(text: Any) -> str:
    # DOT quoted string: escape backslash and quote; drop newlines (hostile text stays inert).
    s = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ")
    return f'"{s}"'


def render_dot(graph: nx.DiGraph, name: str = "mfkit") -> str:
    """Graphviz DOT text of a chain or corpus graph: nodes and edges sorted."""
    out = [f"digraph {_dot_id(name)} {{\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n"]
    for n in sorted(graph.nodes):
        d = graph.nodes[n]
        blob = str(d.get("blob_sum") or "")
        label = f"{str(n)[:12]}\\n{blob.split(':', 1)[-1][:12] if blob else ('missing' if d.get('missing') else '-')}"
        docs = d.get("documents")
        if docs:
            label += f"\\nx{docs}"
        style = ', style="dashed"' if d.get("throwaway") or d.get("missing") else ""
        out.append(f'  {_dot_id(n)} [label="{label}"{style}];\n')
    for a, b in sorted(graph.edges):
        out.append(f"  {_dot_id(a)} -> {_dot_id(b)};\n")
    out.append("}\n")
    return "".join(out)


def render_graphml(graph: nx.DiGraph) -> bytes:
    """GraphML of ``graph`` (nodes and edges sorted, None attributes left out)."""
    g = nx.DiGraph()
    for n in sorted(graph.nodes):
        g.add_node(n, **{k: v for k, v in sorted(graph.nodes[n].items()) if v is not None})
    g.add_edges_from(sorted(graph.edges))
    buf = io.BytesIO()
    nx.write_graphml(g, buf, encoding="utf-8")
    return buf.getvalue()
