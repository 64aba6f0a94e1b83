"""Text, JSON, DOT and GraphML renderings of history, corpus and diff results.  Renders to strings/bytes."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import networkx as nx
import orjson

from .analysis.corpus import Corpus
from .analysis.diff import DiffResult, signature_verdict
from .analysis.history import History
from .core.printable import printable

if TYPE_CHECKING:
    from .analysis.document import Analysis

__all__ = ["json_bytes", "plural", "render_history_text", "render_corpus_text", "render_diff_text",
           "render_dot", "render_graphml"]


def json_bytes(obj: dict[str, Any]) -> bytes:
    """One JSON line, keys sorted (byte-identical from run to run)."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) + b"\n"


def _one_line(text: object) -> str:
    # docker history prints tabs as spaces (docker/cli formatter_history.go).  Every other control
    # (newline, CR, ESC, backspace, bidi override) is shown as an escape: hostile text cannot
    # forge or hide report lines.
    return printable(str(text).replace("\t", " "))


_p = printable


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 document``, ``2 documents`` (``many`` for irregular plurals such as ``entries``)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    n = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{value}B" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return str(value)


def render_history_text(h: History, *, reverse: bool = False, width: int = 0,
                        analysis: Analysis | None = None) -> str:
    """``docker history --no-trunc``-like table plus timeline and findings.

    Every document-derived string is passed through :func:`printable` (hostile manifests carry
    escape sequences and line breaks that would otherwise forge report lines).

    Args:
        h: the history.
        reverse: oldest first.
        width: cut ``created_by`` to this many characters (0: never cut).
        analysis: the analysis the history came from: adds the signature verdict to the header
            and its error-level findings to the findings.
    """
    rows = h.oldest_first() if reverse else h.rows
    out = [f"== {_p(h.source)}  {_p(h.kind)}  {_p(h.digest or '-')}  ({plural(len(rows), 'entry', 'entries')}, "
           f"{'oldest' if reverse else 'newest'} first)\n"]
    if analysis is not None:
        out.append(f"   signature: {signature_verdict(analysis)}\n")
    if h.config_source:
        out.append(f"   config: {_p(h.config_source)}\n")
    ids = [_p(r.id if r.id.startswith("<") else (r.id[:19] if r.id.startswith("sha256:") else r.id[:12]))
           for r in rows]
    idw = max([len("ID")] + [len(i) for i in ids])
    out.append(f"   {'ID':<{idw}}  {'CREATED':<30}  {'SIZE':>8}  {'EMPTY':<5}  {'BLOB':<19}  CREATED BY\n")
    for r, i in zip(rows, ids):
        by = _one_line(r.created_by)
        if width and len(by) > width:
            by = by[: width - 1] + "…"
        blob = _p(r.blob[:19]) if r.blob else "-"
        out.append(f"   {i:<{idw}}  {_p(r.created or '-'):<30}  {_size(r.size):>8}  {'yes' if r.empty else '':<5}  "
                   f"{blob:<19}  {by}\n")
    if h.timeline:
        out.append("   timeline\n")
        out += [f"     {_p(e.time):<32} {_p(e.event)}\n" for e in h.timeline]
    findings = list(h.findings)
    if analysis is not None:
        findings += [f for f in analysis.findings if f.severity == "error"]
    if findings:
        out.append("   findings\n")
        out += [f"     {f.severity:<7} {_p(f.code)}: {_p(f.message)}" + (f"  [{_p(f.where)}]" if f.where else "") + "\n"
                for f in findings]
    return "".join(out)


def render_corpus_text(c: Corpus) -> str:
    """Shared bases, reused blobs, signing keys and tags, one section each."""
    g = c.graph
    roots = sum(1 for _, d in g.in_degree() if d == 0)
    out = [f"{plural(len(c.documents), 'document')}, {len(c.unreadable)} unreadable; graph: "
           f"{plural(g.number_of_nodes(), 'v1 id')}, {plural(g.number_of_edges(), 'edge')}, "
           f"{plural(roots, 'root')}\n",
           f"base groups ({len(c.base_groups)}), by bottom-most non-empty blob\n"]
    for grp in c.base_groups:
        out.append(f"  {_p(grp['base'] or '(no content layer)')}  {plural(len(grp['members']), 'document')}\n")
        out += [f"     {_p(m)}\n" for m in grp["members"]]
    reused = c.reused_blobs
    out.append(f"reused blobs ({len(reused)} of {len(c.blobs)})\n")
    for b, v in sorted(reused.items(), key=lambda kv: (-kv[1]["documents"], kv[0])):
        out.append(f"  {_p(b)}  {plural(v['documents'], 'document')}{'  (empty content)' if v['empty'] else ''}\n")
    out.append(f"signing keys ({len(c.keys)}); role counts only documents where the key's signature is valid\n")
    for k, v in sorted(c.keys.items(), key=lambda kv: (-kv[1]["documents"], kv[0])):
        counts = f"{v['valid']} valid" + (f", {v['invalid']} INVALID" if v["invalid"] else "")
        out.append(f"  {_p(k)}  {plural(v['documents'], 'document')} ({counts})  {_p(v['role'])}  "
                   f"{_p(v['first'])} .. {_p(v['last'])}  {_p(', '.join(v['repositories']))}\n")
    multi = {t: v for t, v in c.tags.items() if len(v["captures"]) > 1}
    out.append(f"tags captured more than once ({len(multi)} of {len(c.tags)})\n")
    for t, v in multi.items():
        state = "DIFFERENT digests" if v["changed"] else "same digest"
        out.append(f"  {_p(t)}  {plural(len(v['captures']), 'capture')}, {state}\n")
        for cap in v["captures"]:
            out.append(f"     {_p(cap['digest'])}  signed {_p(','.join(cap['signed']) or '-')}  "
                       f"fetched {_p(cap['fetched_at'] or '-')}  {_p(cap['source'])}\n")
    for u in c.unreadable:
        out.append(f"unreadable: {_p(u['source'])}: {_p(u['code'])}: {_p(u['message'])}\n")
    return "".join(out)


def render_diff_text(d: DiffResult) -> str:
    """What changed between two captures (every document-derived string made printable)."""
    out = [f"a: {_p(d.a)}\nb: {_p(d.b)}\nverdict: {d.meaning}\n"]
    out += [f"  ! {_p(p)}\n" for p in d.problems]
    out += [f"signatures      a: {_p(d.verdict_a)}\n                b: {_p(d.verdict_b)}\n",
            f"digest          {_p(d.digest_a)}\n             -> {_p(d.digest_b)}\n",
            f"sha256(body)    {_p(d.body_a)}\n             -> {_p(d.body_b)}\n",
            f"payload bytes   {'identical' if d.payload_identical else 'differ'}\n",
            f"signer keys     {_p(', '.join(d.keys_a) or '-')}\n             -> {_p(', '.join(d.keys_b) or '-')}\n",
            f"signature time  {_p(', '.join(d.times_a) or '-')}\n             -> {_p(', '.join(d.times_b) or '-')}\n"]
    for label, items in (("layers added", d.layers_added), ("layers removed", d.layers_removed),
                         ("history added", d.history_added), ("history removed", d.history_removed),
                         ("history changed", d.history_changed)):
        if items:
            out.append(f"{label} ({len(items)})\n")
            out += [f"  {_one_line(i)}\n" for i in items]
    if d.payload_diff:
        out.append("payload diff\n")
        out += [f"  {_p(line)}\n" for line in d.payload_diff]
        if d.payload_diff_truncated:
            out.append("  … (diff cut)\n")
    return "".join(out)


def _dot_id(text: Any) -> str:
    # DOT quoted string: escape backslash and quote; drop newlines (hostile text stays inert).
    s = printable(str(text).replace("\n", " ").replace("\r", " ")).replace("\\", "\\\\").replace('"', '\\"')
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
