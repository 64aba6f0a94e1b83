"""Render analyses to strings (text with rich, JSON lines with orjson).  Never prints."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .analysis.document import Analysis

__all__ = ["render_json_line", "render_error_json", "render_text", "render_error_text", "summary_line"]

_SEV_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def render_json_line(analysis: Analysis) -> bytes:
    """One line of JSON, keys sorted: byte-identical from run to run."""
    return orjson.dumps(analysis.to_dict(), option=orjson.OPT_SORT_KEYS) + b"\n"


def render_error_json(source: str, error: dict[str, Any]) -> bytes:
    """``{source, error: {code, message}}`` for an input that could not be read."""
    return orjson.dumps({"source": source, "error": error}, option=orjson.OPT_SORT_KEYS) + b"\n"


def _console(width: int, color: bool) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=color, color_system="standard" if color else None,
                   highlight=False, soft_wrap=True, markup=False, emoji=False)


def _verdict(a: Analysis) -> Text:
    if a.verified is True:
        return Text("VERIFIED", style="bold green")
    if a.verified is False:
        return Text("NOT VERIFIED", style="bold red")
    return Text("unsigned" if a.kind.startswith("schema1") else "no signature to verify", style="dim")


def _trusted_word(a: Analysis) -> str:
    if a.trusted is None:
        return "unknown (no trust input: a valid signature only proves the embedded key signed it)"
    return "yes" if a.trusted else "NO"


def render_text(analysis: Analysis, *, width: int = 160, color: bool = False) -> str:
    """A readable report of one document."""
    a = analysis
    con = _console(width, color)
    title = Text.assemble(("== ", "bold"), (a.source, "bold"), "  ", (a.kind, "magenta"), "  ", _verdict(a))
    con.print(title)
    m = a.manifest
    if m is not None:
        con.print(f"   name {m.name}  tag {m.tag}  architecture {m.architecture}")
    if a.response.url:
        con.print(f"   fetched {a.response.method or 'GET'} {a.response.url}")
    grant = a.grant or a.response.grant
    if grant and grant.get("format") == "jwt":
        access = ", ".join(f"{x.get('type')}:{x.get('name')}:{','.join(x.get('actions') or []) or '(none)'}"
                           for x in grant.get("access") or []) or "(nothing)"
        con.print(f"   token grant: issuer {grant.get('issuer')} subject {grant.get('subject')!r} "
                  f"audience {grant.get('audience')} access {access} expires {grant.get('expires_at')}")
    d = a.digests
    con.print("   digests")
    con.print(f"     registry digest  {d.registry}")
    con.print(f"     sha256(body)     {d.body}  ({len(a.response.body)} bytes)")
    if a.kind == "schema1-signed":
        size = f"  ({len(a.payload)} bytes)" if a.payload is not None else ""
        con.print(f"     sha256(payload)  {d.payload}{size}")
    if d.header is not None:
        con.print(f"     header           {d.header}  -> matches {d.header_matches}")
    env = a.envelope
    if env is not None:
        if env.format_length is not None:
            con.print(f"   signed range: bytes 0..{env.format_length} + formatTail {env.format_tail!r}")
        if env.signatures:
            t = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
            for col in ("   #", "alg", "key", "key id", "source", "time", "trust"):
                t.add_column(col, no_wrap=True)
            t.add_column("result", overflow="fold")
            for i, s in enumerate(env.signatures):
                result = Text("valid", style="green") if s.valid else Text(f"INVALID: {s.error}", style="red")
                trust = a.trust[i].status if i < len(a.trust) else "unknown"
                t.add_row(f"   {s.index}", s.alg or "-", s.key_type or "-", s.key_id or (s.jwk_kid or "-"),
                          s.key_source or "-", s.time or "-", trust, result)
            con.print("   signatures")
            con.print(t)
            for i, dec in enumerate(a.trust):
                con.print(f"     trust #{i}: {dec.status}: {dec.reason}")
            con.print(f"   trusted: {_trusted_word(a)}")
    if a.layers is not None:
        ls = a.layers
        con.print(f"   layers: {ls.entries} entries, {ls.unique_blobs} unique blobs, {ls.empty} empty, "
                  f"{len(ls.throwaway)} throwaway")
        for blob, pos in ls.repeated.items():
            con.print(f"     {blob[:19]}… x{len(pos)} at {pos}")
    if a.chain is not None and m is not None:
        c = a.chain
        con.print(f"   chain: {'ok' if c.ok else 'BROKEN'}, {len(c.order)} entries, top {str(c.top)[:12]} -> base {str(c.base)[:12]}")
        by_id = {e.id: e for e in m.entries}
        for n, v1 in enumerate(c.order):
            e = by_id.get(v1)
            cmd = (e.created_by or "") if e else ""
            blob = (e.blob_sum or "")[7:19] if e else ""
            con.print(f"     {n:>2} {v1[:12]} {blob:<12} {(e.created or '')[:19] if e else '':<19} {cmd[:60]}")
    if a.descriptors:
        label = "manifests" if a.kind in ("manifest-list", "oci-index") else "layers (base first)"
        con.print(f"   {label}")
        for dsc in a.descriptors:
            extra = f" {dsc.platform}" if dsc.platform else ""
            con.print(f"     {dsc.digest} {dsc.size}{extra}")
    if a.findings:
        con.print("   findings")
        for f in a.findings:
            where = f"  [{f.where}]" if f.where else ""
            con.print(Text.assemble("     ", (f"{f.severity:<7}", _SEV_STYLE[f.severity]), f" {f.code}: {f.message}{where}"))
    return con.file.getvalue()  # type: ignore[attr-defined]


def render_error_text(source: str, error: dict[str, Any]) -> str:
    """A one-line report for an input that could not be read."""
    hint = f" (hint: {error['hint']})" if error.get("hint") else ""
    return f"== {source}  UNREADABLE  {error.get('code')}: {error.get('message')}{hint}\n"


def summary_line(analyses: Iterable[Analysis], unreadable: int) -> str:
    """``N documents: V verified, F failed, U unsigned/other, E error findings, R unreadable``."""
    items = list(analyses)
    verified = sum(1 for a in items if a.verified is True)
    failed = sum(1 for a in items if a.verified is False)
    errors = sum(1 for a in items if any(f.severity == "error" for f in a.findings))
    return (f"{len(items) + unreadable} inputs: {verified} verified, {failed} not verified, "
            f"{len(items) - verified - failed} without signatures, {errors} with error findings, {unreadable} unreadable\n")
