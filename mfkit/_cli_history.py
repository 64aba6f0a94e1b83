"""``mfkit history``, ``corpus``, ``diff`` and ``report``: thin wiring from arguments to the library."""

from __future__ import annotations

import errno
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .capture import atomic_write
from .cli import app
from .core.printable import printable
from .errors import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, MfkitError, UsageError
from .limits import DEFAULT_MAX_SIZE

# The analysis and report stacks (networkx among them) load inside each command, so that
# `mfkit fetch` and `mfkit --help` start quickly.

__all__ = ["history_cmd", "corpus_cmd", "diff_cmd", "report_cmd"]


def _fail(exc: MfkitError) -> typer.Exit:
    # messages can quote document text (file names, members): never let it reach the terminal raw
    lines = exc.diagnostics().split("\n")
    typer.echo("mfkit: error: " + "\n".join(printable(line) for line in lines), err=True)
    return typer.Exit(exc.exit_code)


def _check_output(path: Path, flag: str) -> None:
    """Refuse, before any work, an output whose folder is missing or that names a folder."""
    parent = path.parent
    if not parent.exists():
        raise UsageError(f"{flag} {path}: the folder {parent} does not exist (mfkit does not create folders)",
                         code="usage.output", hint=f"create it first: mkdir -p {shlex.quote(str(parent))}")
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is not a folder", code="usage.output")
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; name a file to write", code="usage.output")


def _write(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if path.exists() and not path.is_file():
            why = f"it exists and is not a regular file ({why})"
        elif path.parent.is_dir() and exc.errno in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS):
            # the report is written to a temporary file next to the target, then renamed over it
            why = f"the folder {path.parent} does not accept new files ({why})"
        raise MfkitError(f"cannot write {path}: {why}", code="output.write") from exc


def _unreadable(errors: list) -> None:
    for e in errors:
        typer.echo(f"mfkit: unreadable: {printable(getattr(e, 'source', '?'))}: {printable(e.code)}: "
                   f"{printable(e.message)}", err=True)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@app.command("history", help="The `docker history` view of each document: one row per v1Compatibility "
                             "(schema 1) or per config history entry (schema 2 / OCI), newest first, with the "
                             "signature verdict (VERIFIED / NOT VERIFIED / unsigned, and whether unsigned "
                             "content is present) and a timeline of created / signed / fetched times. "
                             "Exit codes (as `mfkit analyze`): 0 shown, every signed document verified, no "
                             "error-level finding; 1 a verification failed, an error-level finding, or no "
                             "document with a history; 2 usage error; 3 an input could not be read.")
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
    from .analysis.diff import signature_verdict

    out = sys.stdout.buffer
    for _, a, h in items:
        if json_out:
            doc = h.to_dict(reverse=reverse)
            doc.update(verified=a.verified, trusted=a.trusted, signature=signature_verdict(a), ok=a.ok,
                       error_findings=[f.to_dict() for f in a.findings if f.severity == "error"])
            out.write(json_bytes(doc))
        else:
            out.write(render_history_text(h, reverse=reverse, width=width, analysis=a).encode())
    out.flush()
    _unreadable(errors)
    if errors:
        raise typer.Exit(EXIT_INPUT)
    if not items:
        typer.echo("mfkit: no document with a history among the inputs", err=True)
        raise typer.Exit(EXIT_FINDINGS)
    bad = any(not a.ok or any(f.severity == "error" for f in h.findings) for _, a, h in items)
    raise typer.Exit(EXIT_FINDINGS if bad else EXIT_OK)


@app.command("corpus", help="Read many documents together: one graph of v1 ids across all of them, images "
                            "grouped by base layer, reused blobs, signing keys, tags captured more than once. "
                            "Keys count as shared only when their signature is valid in several documents. "
                            "Exit codes: 0 done; 2 usage error (also: the folder of --graphml/--dot does not "
                            "exist); 3 an input could not be read or an export could not be written.")
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
        for target, flag in ((graphml, "--graphml"), (dot, "--dot")):
            if target is not None:
                _check_output(target, flag)
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


@app.command("diff", help="Compare two captures of the same reference: signature verdicts, digest, payload "
                          "bytes, signer, signature time, layers and history. Exit codes: 0 same payload "
                          "(identical, or re-signed by the registry) and both sides verify with nothing "
                          "unsigned; 1 a different image, a side that does not verify or carries unsigned "
                          "content, or a signature block altered under the same key and time; 2 usage error "
                          "(an input holds no manifest or several); 3 an input could not be read.")
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
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FINDINGS)


@app.command("report", help="Write a forensic report (Markdown or self-contained HTML): inputs with their "
                            "digests, signature verdicts and trust, findings, history and chain figures. "
                            "Exit codes: 0 written; 2 usage error (also: the folder of -o does not exist, or -o "
                            "names a folder); 3 an input could not be read (the report is still written) or the "
                            "file could not be written.")
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
        _check_output(output, "-o")
        items, errors = report_items(paths, config=config)
        command = " ".join(["mfkit", "report", *map(shlex.quote, paths), "--format", fmt, "-o",
                            shlex.quote(str(output))])
        text = render_report(items, fmt, version=__version__, command=command,
                             unreadable=[(getattr(e, "source", "?"), e.message) for e in errors])
        _write(output, text.encode("utf-8"))
    except MfkitError as exc:
        raise _fail(exc) from None
    _unreadable(errors)
    typer.echo(f"mfkit: wrote {printable(output)} ({_plural(len(items), 'document')})", err=True)
    raise typer.Exit(EXIT_INPUT if errors else EXIT_OK)
