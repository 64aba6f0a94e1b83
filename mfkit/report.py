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
from .core.printable import printable

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


_UNSIGNED_CODES = {"jws.unsigned-content", "jws.unsigned-member", "jws.outer-differs"}


def _verdict(a: Analysis) -> Text:
    if a.verified is True and any(f.code in _UNSIGNED_CODES for f in a.findings):
        return Text("VERIFIED (signed payload only) - UNSIGNED CONTENT PRESENT", style="bold yellow")
    if a.verified is True:
        return Text("VERIFIED", style="bold green")
    if a.verified is False:
        return Text("NOT VERIFIED", style="bold red")
    return Text("unsigned" if a.kind.startswith("schema1") else "no signature to verify", style="dim")


def _line(con: Console, text: str) -> None:
    """One report line; document-derived text inside it is made printable (no escapes reach a terminal)."""
    con.print(printable(text))


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _trusted_word(a: Analysis) -> str:
    if a.trusted is None:
        return "unknown (no trust input: a valid signature only proves the embedded key signed it)"
    return "yes" if a.trusted else "NO"


def render_text(analysis: Analysis, *, width: int = 160, color: bool = False) -> str:
    """A readable report of one document."""
    a = analysis
    con = _console(width, color)
    title = Text.assemble(("== ", "bold"), (printable(a.source), "bold"), "  ", (a.kind, "magenta"), "  ", _verdict(a))
    con.print(title)
    m = a.manifest
    if m is not None:
        _line(con, f"   name {m.name}  tag {m.tag}  architecture {m.architecture}")
    if a.response.url:
        _line(con, f"   fetched {a.response.method or 'GET'} {a.response.url}")
    grant = a.grant or a.response.grant
    if grant and grant.get("format") == "jwt":
        access = ", ".join(f"{x.get('type')}:{x.get('name')}:{','.join(x.get('actions') or []) or '(none)'}"
                           for x in grant.get("access") or []) or "(nothing)"
        _line(con, f"   token grant: issuer {grant.get('issuer')} subject {grant.get('subject')!r} "
                   f"audience {grant.get('audience')} access {access} expires {grant.get('expires_at')}")
    d = a.digests
    con.print("   digests")
    _line(con, f"     registry digest  {d.registry}")
    _line(con, f"     sha256(body)     {d.body}  ({len(a.response.body)} bytes)")
    if a.kind == "schema1-signed":
        size = f"  ({len(a.payload)} bytes)" if a.payload is not None else ""
        _line(con, f"     sha256(payload)  {d.payload}{size}")
    if d.header is not None:
        _line(con, f"     header           {d.header}  -> matches {d.header_matches}")
    env = a.envelope
    if env is not None:
        if env.format_length is not None:
            _line(con, f"   signed range: bytes 0..{env.format_length} + formatTail {env.format_tail!r}")
        if env.signatures:
            t = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
            for col in ("   #", "alg", "key", "key id", "source", "time", "trust"):
                t.add_column(col, no_wrap=True)
            t.add_column("result", overflow="fold")
            for i, s in enumerate(env.signatures):
                result = Text("valid", style="green") if s.valid else Text(printable(f"INVALID: {s.error}"), style="red")
                trust = a.trust[i].status if i < len(a.trust) else "unknown"
                t.add_row(f"   {s.index}", printable(s.alg or "-"), s.key_type or "-",
                          printable(s.key_id or (s.jwk_kid or "-")), s.key_source or "-", printable(s.time or "-"),
                          trust, result)
            con.print("   signatures")
            con.print(t)
            for i, dec in enumerate(a.trust):
                _line(con, f"     trust #{i}: {dec.status}: {dec.reason}")
            _line(con, f"   trusted: {_trusted_word(a)}")
    if a.layers is not None:
        ls = a.layers
        _line(con, f"   layers: {_n(ls.entries, 'entry', 'entries')}, {_n(ls.unique_blobs, 'unique blob')}, "
                   f"{ls.empty} empty, {len(ls.throwaway)} throwaway")
        for blob, pos in ls.repeated.items():
            _line(con, f"     {blob[:19]}… x{len(pos)} at {pos}")
    if a.chain is not None and m is not None:
        c = a.chain
        _line(con, f"   chain: {'ok' if c.ok else 'BROKEN'}, {len(c.order)} entries, top {str(c.top)[:12]} -> base {str(c.base)[:12]}")
        by_id = {e.id: e for e in m.entries}
        for n, v1 in enumerate(c.order):
            e = by_id.get(v1)
            cmd = (e.created_by or "") if e else ""
            blob = (e.blob_sum or "")[7:19] if e else ""
            _line(con, f"     {n:>2} {v1[:12]} {blob:<12} {(e.created or '')[:19] if e else '':<19} {cmd[:60]}")
    if a.descriptors:
        label = "manifests" if a.kind in ("manifest-list", "oci-index") else "layers (base first)"
        _line(con, f"   {label}")
        for dsc in a.descriptors:
            extra = f" {dsc.platform}" if dsc.platform else ""
            _line(con, f"     {dsc.digest} {dsc.size}{extra}")
    if a.findings:
        con.print("   findings")
        for f in a.findings:
            where = f"  [{f.where}]" if f.where else ""
            con.print(Text.assemble("     ", (f"{f.severity:<7}", _SEV_STYLE[f.severity]),
                                    printable(f" {f.code}: {f.message}{where}")))
    return con.file.getvalue()  # type: ignore[attr-defined]


def render_error_text(source: str, error: dict[str, Any]) -> str:
    """A one-line report for an input that could not be read."""
    hint = f" (hint: {error['hint']})" if error.get("hint") else ""
    return printable(f"== {source}  UNREADABLE  {error.get('code')}: {error.get('message')}{hint}") + "\n"


def summary_line(analyses: Iterable[Analysis], unreadable: int) -> str:
    """``N documents: V verified, F failed, U unsigned/other, E error findings, R unreadable``."""
    items = list(analyses)
    verified = sum(1 for a in items if a.verified is True)
    failed = sum(1 for a in items if a.verified is False)
    errors = sum(1 for a in items if any(f.severity == "error" for f in a.findings))
    return (f"{_n(len(items) + unreadable, 'input')}: {verified} verified, {failed} not verified, "
            f"{len(items) - verified - failed} without signatures, {errors} with error findings, {unreadable} unreadable\n")
