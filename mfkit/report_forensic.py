"""Forensic reports (Markdown, self-contained HTML) and notebook HTML.  Renders to strings, never writes.

Manifests are hostile input: every document-derived string goes through :func:`esc`
(HTML: :func:`~mfkit.core.printable.printable`, then ``html.escape``) or :func:`md_cell`
(Markdown: :func:`~mfkit.core.printable.markdown_text`, so no link, image or emphasis can come
from a document) before it is placed in markup, SVG included.
"""

from __future__ import annotations

import base64
import html
import shlex
from collections.abc import Sequence
from typing import Any

import networkx as nx

from .analysis.corpus import Corpus
from .analysis.diff import UNSIGNED_CONTENT_CODES, DiffResult
from .analysis.document import Analysis
from .analysis.history import History
from .analysis.layers import EMPTY_BLOBS
from .core.printable import markdown_text, printable

__all__ = ["esc", "md_cell", "chain_svg", "graph_boxes", "history_boxes", "render_report", "history_html",
           "corpus_html", "diff_html", "verdict_text", "trust_text", "CSS"]

CSS = ("body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
       "table{border-collapse:collapse;margin:.5em 0;font-size:13px}"
       "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
       "th{background:#f3f3f3}code,.mono{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}"
       ".error{color:#b00020;font-weight:bold}.warning{color:#a66000}.info{color:#036}"
       ".ok{color:#18794e;font-weight:bold}.bad{color:#b00020;font-weight:bold}"
       "figcaption{font-size:12px;color:#555}")


def esc(value: Any) -> str:
    """HTML-escape anything (None becomes an empty string), quotes included; controls shown as escapes."""
    return "" if value is None else html.escape(printable(value), quote=True)


def md_cell(value: Any) -> str:
    """Inert Markdown text, one line: controls shown as escapes, ``&`` ``<`` ``>`` as entities, every
    other Markdown metacharacter (links, images, emphasis, pipes, backticks) backslash-escaped.

    Not for code spans (backslashes and entities are literal there)."""
    if value is None:
        return " "
    text = markdown_text(str(value).replace("&", "&amp;"))
    # entities for < and >; "://" broken up so that no bare URL becomes a GFM autolink
    return text.replace("\\<", "&lt;").replace("\\>", "&gt;").replace("://", ":\\/\\/") or " "


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def image_name(a: Analysis) -> str:
    """``name:tag`` of a schema 1 manifest (from the signed payload), else ``-``."""
    m = a.manifest
    if m is None or not (m.name or m.tag):
        return "-"
    return f"{m.name or '?'}:{m.tag or '?'}"


def verdict_text(a: Analysis) -> str:
    """VERIFIED / NOT VERIFIED / unsigned, plus OK or the error-finding count."""
    v = {True: "VERIFIED", False: "NOT VERIFIED"}.get(a.verified,  # type: ignore[arg-type]
                                                       "unsigned" if a.kind.startswith("schema1") else "no signature")
    if any(f.severity == "error" and f.code in UNSIGNED_CONTENT_CODES for f in a.findings):
        v += "; unsigned content present"
    errors = sum(1 for f in a.findings if f.severity == "error")
    return f"{v}; {_plural(errors, 'error finding')}" if errors else f"{v}; no error finding"


def _decisions(a: Analysis) -> tuple:
    value = getattr(a, "trust", None)  # per-signature trust decisions, when the analysis has them
    return tuple(value) if isinstance(value, (tuple, list)) else ()


def trust_text(a: Analysis) -> str:
    """The trust decision if the analysis carries one, else ``no trust policy given``.

    Validity and trust are separate: a valid signature by an unknown key is not trusted.
    """
    decisions = _decisions(a)
    if not decisions or all(getattr(d, "status", "unknown") == "unknown" for d in decisions):
        return "no trust policy given"
    trusted = getattr(a, "trusted", None)
    head = {True: "TRUSTED", False: "NOT TRUSTED"}.get(trusted, "undecided")  # type: ignore[arg-type]
    parts = [f"signature {i}: {getattr(d, 'status', '?')} ({getattr(d, 'reason', '')})"
             for i, d in enumerate(decisions)]
    return head + "; " + "; ".join(parts)


# --- the chain figure --------------------------------------------------------------------

Box = tuple[str, str, str, bool]  # (id, blob, step text, empty)


def graph_boxes(graph: nx.DiGraph) -> list[Box]:
    """Boxes of a chain graph (parent -> child), base first, in a stable order."""
    try:
        order = list(nx.lexicographical_topological_sort(graph))
    except nx.NetworkXUnfeasible:  # a cycle: the chain finding reports it; draw in id order
        order = sorted(graph.nodes)
    out = []
    for n in order:
        d = graph.nodes[n]
        if d.get("missing"):
            out.append((str(n), "", "(not in this manifest)", True))
            continue
        blob = d.get("blob_sum") or ""
        out.append((str(n), blob, d.get("created_by") or "", bool(d.get("throwaway")) or blob in EMPTY_BLOBS))
    return out


def history_boxes(h: History) -> list[Box]:
    """Boxes of a history (schema 2 / OCI have no graph), base first."""
    return [(r.id, r.blob or "", r.created_by, r.empty) for r in h.oldest_first()]


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "-"


def chain_svg(boxes: Sequence[Box], title: str = "") -> str:
    """A vertical chain: the base at the bottom, arrows parent -> child.  All text escaped."""
    w, h, gap, top = 560, 42, 20, 28 if title else 8
    n = len(boxes)
    height = top + n * (h + gap) + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 20}" height="{height}" '
             f'viewBox="0 0 {w + 20} {height}" font-family="monospace" font-size="11">']
    if title:
        parts.append(f'<text x="10" y="18" font-weight="bold">{esc(title)}</text>')
    for i, (v1, blob, step, empty) in enumerate(reversed(list(boxes))):  # newest drawn at the top
        y = top + i * (h + gap)
        dash = ' stroke-dasharray="4 3"' if empty else ""
        fill = "#f4f4f4" if empty else "#e8f0fe"
        parts.append(f'<rect x="10" y="{y}" width="{w}" height="{h}" rx="4" fill="{fill}" stroke="#557"{dash}/>')
        label = f"{_short(v1) if v1.startswith('sha256:') else v1[:12]}  blob {_short(blob)}" + ("  (empty)" if empty else "")
        parts.append(f'<text x="18" y="{y + 16}">{esc(label)}</text>')
        text = " ".join(step.split())
        parts.append(f'<text x="18" y="{y + 32}" fill="#444">{esc(text[:80] + ("…" if len(text) > 80 else ""))}</text>')
        if i < n - 1:  # arrow from the parent (below) up to this child
            x = 10 + w // 2
            parts.append(f'<line x1="{x}" y1="{y + h + gap}" x2="{x}" y2="{y + h + 4}" stroke="#557"/>'
                         f'<path d="M{x - 4},{y + h + 9} L{x},{y + h + 2} L{x + 4},{y + h + 9}" fill="#557"/>')
    parts.append("</svg>")
    return "".join(parts)


def _boxes_for(a: Analysis, h: History | None) -> list[Box]:
    if a.chain is not None and a.chain.order:
        return graph_boxes(a.chain.graph)
    return history_boxes(h) if h is not None else []


# --- tables ------------------------------------------------------------------------------

def _html_table(head: Sequence[str], rows: Sequence[Sequence[Any]], mono: Sequence[int] = ()) -> str:
    out = ["<table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in head) + "</tr>"]
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            cls = ' class="mono"' if i in mono else ""
            cells.append(f"<td{cls}>{esc(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _md_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]  # headings are mfkit's own text
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _sig_rows(a: Analysis) -> list[list[Any]]:
    rows = []
    decisions = _decisions(a)
    for s in a.signatures:
        d = decisions[s.index] if 0 <= s.index < len(decisions) else None
        trusted = getattr(d, "status", None) if d is not None else getattr(s, "trusted", None)
        rows.append([s.index, s.alg or "-", s.key_id or s.jwk_kid or "-", s.key_type or "-", s.key_source or "-",
                     s.time or "-", "valid" if s.valid else f"INVALID: {s.error}",
                     "-" if trusted is None else trusted])
    return rows


_SIG_HEAD = ["#", "alg", "key id", "key", "key source", "time", "result", "trusted"]


def _finding_rows(a: Analysis, h: History | None) -> list[list[str]]:
    rows = [[f.severity, f.code, f.message, f.where, "analysis"] for f in a.findings]
    if h is not None:
        rows += [[f.severity, f.code, f.message, f.where, "history"] for f in h.findings]
    return rows


def _history_rows(h: History) -> list[list[Any]]:
    return [[r.id if r.id.startswith("<") else (r.id[:19] if r.id.startswith("sha256:") else r.id[:12]),
             r.created or "", r.created_by.replace("\t", " "), "" if r.size is None else r.size,
             "yes" if r.empty else "", r.blob or ""] for r in h.rows]


_HIST_HEAD = ["id", "created", "created by", "size", "empty", "blob"]


# --- the forensic report -----------------------------------------------------------------

def render_report(items: Sequence[tuple[str, Analysis, History | None]], fmt: str, *, version: str,
                  command: str, unreadable: Sequence[tuple[str, str]] = ()) -> str:
    """The forensic report of ``items`` (``(input path, analysis, history)`` triples).

    Args:
        items: what to report, in input order.
        fmt: ``md`` or ``html``.
        version: the mfkit version that made it.
        command: the command line that made it (shown at the top).
        unreadable: ``(source, message)`` for inputs that could not be read.
    """
    if fmt == "html":
        return _report_html(items, version, command, unreadable)
    return _report_md(items, version, command, unreadable)


def _inputs_rows(items: Sequence[tuple[str, Analysis, History | None]]) -> list[list[Any]]:
    return [[n, a.source, a.kind, image_name(a), len(a.response.body), a.digests.body, a.digests.registry or "-",
             a.digests.header or "-", verdict_text(a)] for n, (_, a, _h) in enumerate(items, 1)]


_INPUT_HEAD = ["#", "source", "kind", "name:tag", "bytes", "sha256 (body)", "registry digest",
               "Docker-Content-Digest", "verdict"]


def _reproduce(path: str) -> str:
    return f"mfkit history --reverse {shlex.quote(path)}"


def _report_md(items, version, command, unreadable) -> str:
    out = ["# mfkit forensic report\n", f"Made by mfkit {md_cell(version)} with: {md_cell(command)}\n\n"
           "Every value below is computed offline from the saved bytes.\n", "## Inputs\n",
           _md_table(_INPUT_HEAD, _inputs_rows(items))]
    if unreadable:
        out += ["\nUnreadable inputs:\n", _md_table(["source", "error"], list(unreadable))]
    for n, (path, a, h) in enumerate(items, 1):
        out.append(f"\n## {n}. {md_cell(a.source)}\n")
        out.append(f"- kind: {md_cell(a.kind)}\n")
        if a.manifest is not None:
            out.append(f"- name: {md_cell(a.manifest.name)}\n- tag: {md_cell(a.manifest.tag)}\n")
        out.append(f"- verdict: **{md_cell(verdict_text(a))}**\n"
                   f"- trust: {md_cell(trust_text(a))}\n- sha256 (body): {md_cell(a.digests.body)}\n"
                   f"- registry digest: {md_cell(a.digests.registry)}\n")
        if a.signatures:
            out += ["\n### Signatures\n", _md_table(_SIG_HEAD, _sig_rows(a))]
        rows = _finding_rows(a, h)
        out += ["\n### Findings\n", _md_table(["severity", "code", "message", "where", "from"], rows) if rows
                else "No findings.\n"]
        if h is not None and h.rows:
            out += ["\n### History (newest first)\n", _md_table(_HIST_HEAD, _history_rows(h))]
            if h.timeline:
                out += ["\n### Timeline\n", _md_table(["time", "event"], [[e.time, e.event] for e in h.timeline])]
        boxes = _boxes_for(a, h)
        if boxes:
            svg = chain_svg(boxes, f"chain of {a.source}")
            data = base64.b64encode(svg.encode()).decode("ascii")
            out.append(f"\n### Chain\n\n![chain figure](data:image/svg+xml;base64,{data})\n\n"
                       f"Reproduce: {md_cell(_reproduce(path))}\n")
    return "".join(out)


def _report_html(items, version, command, unreadable) -> str:
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; img-src data:">',
           f"<title>mfkit forensic report</title><style>{CSS}</style></head><body>",
           "<h1>mfkit forensic report</h1>",
           f"<p>Made by mfkit {esc(version)} with <code>{esc(command)}</code>. Every value below is computed "
           "offline from the saved bytes.</p><h2>Inputs</h2>",
           _html_table(_INPUT_HEAD, _inputs_rows(items), mono=(4, 5, 6))]
    if unreadable:
        out += ["<p>Unreadable inputs:</p>", _html_table(["source", "error"], list(unreadable))]
    for n, (path, a, h) in enumerate(items, 1):
        out.append(f"<h2>{n}. {esc(a.source)}</h2>")
        out.append(_summary_html(a, h))
        boxes = _boxes_for(a, h)
        if boxes:
            out.append(f"<figure>{chain_svg(boxes, f'chain of {a.source}')}"
                       f"<figcaption>Reproduce: <code>{esc(_reproduce(path))}</code></figcaption></figure>")
    out.append("</body></html>\n")
    return "".join(out)


def _summary_html(a: Analysis, h: History | None) -> str:
    cls = "ok" if a.ok and a.verified is not False else "bad"
    name = ""
    if a.manifest is not None:
        name = f"; name <b>{esc(a.manifest.name)}</b>; tag <b>{esc(a.manifest.tag)}</b>"
    out = [f'<p>kind <b>{esc(a.kind)}</b>{name}; verdict <span class="{cls}">{esc(verdict_text(a))}</span>; '
           f"trust: {esc(trust_text(a))}</p>",
           _html_table(["digest", "value"], [["sha256 (body)", a.digests.body], ["registry", a.digests.registry],
                                             ["payload", a.digests.payload], ["header", a.digests.header],
                                             ["header matches", a.digests.header_matches]], mono=(1,))]
    if a.signatures:
        out += ["<h3>Signatures</h3>", _html_table(_SIG_HEAD, _sig_rows(a), mono=(2,))]
    rows = _finding_rows(a, h)
    out.append("<h3>Findings</h3>")
    if rows:
        body = "".join(f'<tr><td class="{esc(r[0])}">{esc(r[0])}</td><td>{esc(r[1])}</td><td>{esc(r[2])}</td>'
                       f'<td class="mono">{esc(r[3])}</td><td>{esc(r[4])}</td></tr>' for r in rows)
        out.append("<table><tr><th>severity</th><th>code</th><th>message</th><th>where</th><th>from</th></tr>"
                   + body + "</table>")
    else:
        out.append("<p>No findings.</p>")
    if h is not None and h.rows:
        out += ["<h3>History (newest first)</h3>", _html_table(_HIST_HEAD, _history_rows(h), mono=(0, 5))]
        if h.timeline:
            out += ["<h3>Timeline</h3>", _html_table(["time", "event"], [[e.time, e.event] for e in h.timeline])]
    return "".join(out)


# --- notebook HTML -----------------------------------------------------------------------

def analysis_summary_html(a: Analysis, h: History | None = None) -> str:
    """Verdict, digests, signatures, findings, history and the chain figure of one analysis."""
    boxes = _boxes_for(a, h)
    fig = chain_svg(boxes, f"chain of {a.source}") if boxes else ""
    return f"<div><h3>{esc(a.source)}</h3>{_summary_html(a, h)}{fig}</div>"


def history_html(h: History) -> str:
    """A history as an HTML table (newest first) with its timeline and findings."""
    out = [f"<div><b>{esc(h.source)}</b> <code>{esc(h.kind)}</code> <code>{esc(h.digest)}</code>",
           _html_table(_HIST_HEAD, _history_rows(h), mono=(0, 5))]
    if h.timeline:
        out.append(_html_table(["time", "event"], [[e.time, e.event] for e in h.timeline]))
    if h.findings:
        out.append(_html_table(["severity", "code", "message", "where"],
                               [[f.severity, f.code, f.message, f.where] for f in h.findings]))
    out.append("</div>")
    return "".join(out)


def corpus_html(c: Corpus) -> str:
    """The corpus aggregates as HTML tables."""
    out = [f"<div><p>{_plural(len(c.documents), 'document')}, graph of {_plural(c.graph.number_of_nodes(), 'v1 id')} "
           f"and {_plural(c.graph.number_of_edges(), 'edge')}, {len(c.unreadable)} unreadable</p><h4>Base groups</h4>",
           _html_table(["base blob", "documents", "members"],
                       [[g["base"] or "(no content layer)", len(g["members"]), ", ".join(g["members"])]
                        for g in c.base_groups], mono=(0,)),
           "<h4>Signing keys</h4>",
           _html_table(["key id", "documents", "valid", "invalid", "role", "repositories", "first", "last"],
                       [[k, v["documents"], v["valid"], v["invalid"], v["role"], ", ".join(v["repositories"]),
                         v["first"], v["last"]] for k, v in c.keys.items()], mono=(0,)),
           "<h4>Reused blobs</h4>",
           _html_table(["blob", "documents", "empty"],
                       [[b, v["documents"], "yes" if v["empty"] else ""] for b, v in c.reused_blobs.items()],
                       mono=(0,)),
           "<h4>Tags</h4>",
           _html_table(["image", "captures", "digests", "changed"],
                       [[t, len(v["captures"]), ", ".join(v["digests"]), "yes" if v["changed"] else ""]
                        for t, v in c.tags.items()], mono=(2,)),
           "</div>"]
    return "".join(out)


def diff_html(d: DiffResult) -> str:
    """A diff result as HTML."""
    rows = [["verdict", f"{d.verdict}: {d.meaning}"], *[["problem", p] for p in d.problems],
            ["signatures", f"A: {d.verdict_a}; B: {d.verdict_b}"], ["digest", f"{d.digest_a} → {d.digest_b}"],
            ["payload identical", d.payload_identical], ["keys", f"{list(d.keys_a)} → {list(d.keys_b)}"],
            ["signature times", f"{list(d.times_a)} → {list(d.times_b)}"],
            ["layers added", ", ".join(d.layers_added)], ["layers removed", ", ".join(d.layers_removed)],
            ["history added", "; ".join(d.history_added)], ["history removed", "; ".join(d.history_removed)],
            ["history changed", "; ".join(d.history_changed)]]
    diff = f"<pre>{chr(10).join(esc(line) for line in d.payload_diff)}</pre>" if d.payload_diff else ""
    return f"<div><p>{esc(d.a)} vs {esc(d.b)}</p>{_html_table(['what', 'value'], rows, mono=(1,))}{diff}</div>"
