"""``mfkit history``, ``corpus``, ``diff`` and ``report``: thin wiring from arguments to the library."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .capture import atomic_write
from .cli import app
from .errors import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, MfkitError, UsageError
from .limits import DEFAULT_MAX_SIZE

# The analysis and report stacks (networkx among them) load inside each command, so that
# `mfkit fetch` and `mfkit --help` start quickly.

__all__ = ["history_cmd", "corpus_cmd", "diff_cmd", "report_cmd"]


def _fail(exc: MfkitError) -> typer.Exit:
    typer.echo(f"mfkit: error: {exc.diagnostics()}", err=True)
    return typer.Exit(exc.exit_code)


def _write(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise MfkitError(f"cannot write {path}: {exc.strerror or exc}", code="output.write") from exc


def _unreadable(errors: list) -> None:
    for e in errors:
        typer.echo(f"mfkit: unreadable: {getattr(e, 'source', '?')}: {e.code}: {e.message}", err=True)


@app.command("history", help="The `docker history` view of each document: one row per v1Compatibility "
                             "(schema 1) or per config history entry (schema 2 / OCI), newest first, with a "
                             "timeline of created / signed / fetched times. Exit codes: 0 shown; 1 an "
                             "error-level history finding or no document with a history; 2 usage error; "
                             "3 an input could not be read.")
def history_cmd(
    paths: Annotated[list[str], typer.Argument(help="files, folders, captures, transcripts")],
    reverse: Annotated[bool, typer.Option("--reverse", help="oldest first")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object per document, keys sorted")] = False,
    config: Annotated[Optional[str], typer.Option("--config", help="image config to use for schema 2 / OCI "
                                                                   "manifests (default: found by digest)")] = None,
    width: Annotated[int, typer.Option("--width", min=0, help="cut CREATED BY at N characters (0: never)")] = 0,
    max_size: Annotated[int, typer.Option("--max-size", min=1, help="largest input read, in bytes")] = DEFAULT_MAX_SIZE,
) -> None:
    from .explore import histories
    from .report_views import json_bytes, render_history_text

    try:
        items, errors = histories(paths, config=config, max_size=max_size)
    except MfkitError as exc:
        raise _fail(exc) from None
    out = sys.stdout.buffer
    for _, _, h in items:
        out.write(json_bytes(h.to_dict(reverse=reverse)) if json_out
                  else render_history_text(h, reverse=reverse, width=width).encode())
    out.flush()
    _unreadable(errors)
    if errors:
        raise typer.Exit(EXIT_INPUT)
    if not items:
        typer.echo("mfkit: no document with a history among the inputs", err=True)
        raise typer.Exit(EXIT_FINDINGS)
    bad = any(f.severity == "error" for _, _, h in items for f in h.findings)
    raise typer.Exit(EXIT_FINDINGS if bad else EXIT_OK)


@app.command("corpus", help="Read many documents together: one graph of v1 ids across all of them, images "
                            "grouped by base layer, reused blobs, signing keys, tags captured more than once. "
                            "Exit codes: 0 done; 2 usage error; 3 an input could not be read or an export "
                            "could not be written.")
def corpus_cmd(
    paths: Annotated[list[str], typer.Argument(help="folders or files")],
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object, keys sorted")] = False,
    graphml: Annotated[Optional[Path], typer.Option("--graphml", help="write the graph as GraphML")] = None,
    dot: Annotated[Optional[Path], typer.Option("--dot", help="write the graph as Graphviz DOT")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="worker processes")] = 1,
    max_size: Annotated[int, typer.Option("--max-size", min=1, help="largest input read, in bytes")] = DEFAULT_MAX_SIZE,
) -> None:
    from .explore import corpus as build_corpus
    from .report_views import json_bytes, render_corpus_text, render_dot, render_graphml

    try:
        result = build_corpus(*paths, jobs=jobs, max_size=max_size)
        if graphml is not None:
            _write(graphml, render_graphml(result.graph))
        if dot is not None:
            _write(dot, render_dot(result.graph, "mfkit corpus").encode())
    except MfkitError as exc:
        raise _fail(exc) from None
    out = sys.stdout.buffer
    out.write(json_bytes(result.to_dict()) if json_out else render_corpus_text(result).encode())
    out.flush()
    raise typer.Exit(EXIT_INPUT if result.unreadable else EXIT_OK)


@app.command("diff", help="Compare two captures of the same reference: digest, payload bytes, signer, "
                          "signature time, layers and history. Exit codes: 0 same payload (identical, or "
                          "re-signed by the registry); 1 a different image; 2 usage error (an input holds no "
                          "manifest or several); 3 an input could not be read.")
def diff_cmd(
    a: Annotated[str, typer.Argument(help="first capture (file or capture sidecar)")],
    b: Annotated[str, typer.Argument(help="second capture")],
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object, keys sorted")] = False,
) -> None:
    from .explore import diff as diff_paths
    from .report_views import json_bytes, render_diff_text

    try:
        result = diff_paths(a, b)
    except MfkitError as exc:
        raise _fail(exc) from None
    sys.stdout.buffer.write(json_bytes(result.to_dict()) if json_out else render_diff_text(result).encode())
    sys.stdout.buffer.flush()
    raise typer.Exit(EXIT_OK if result.same_payload else EXIT_FINDINGS)


@app.command("report", help="Write a forensic report (Markdown or self-contained HTML): inputs with their "
                            "digests, signature verdicts and trust, findings, history and chain figures. "
                            "Exit codes: 0 written; 2 usage error; 3 an input could not be read (the report "
                            "is still written) or the file could not be written.")
def report_cmd(
    paths: Annotated[list[str], typer.Argument(help="files, folders, captures, transcripts")],
    output: Annotated[Path, typer.Option("-o", "--output", help="report file to write", show_default=False)],
    fmt: Annotated[str, typer.Option("--format", help="md or html")] = "html",
    config: Annotated[Optional[str], typer.Option("--config", help="image config for schema 2 / OCI")] = None,
) -> None:
    from .explore import report_items
    from .report_forensic import render_report

    try:
        if fmt not in ("md", "html"):
            raise UsageError(f"--format must be md or html, not {fmt!r}", code="usage.format")
        items, errors = report_items(paths, config=config)
        command = " ".join(["mfkit", "report", *map(shlex.quote, paths), "--format", fmt, "-o",
                            shlex.quote(str(output))])
        text = render_report(items, fmt, version=__version__, command=command,
                             unreadable=[(getattr(e, "source", "?"), e.message) for e in errors])
        _write(output, text.encode("utf-8"))
    except MfkitError as exc:
        raise _fail(exc) from None
    _unreadable(errors)
    typer.echo(f"mfkit: wrote {output} ({len(items)} documents)", err=True)
    raise typer.Exit(EXIT_INPUT if errors else EXIT_OK)
