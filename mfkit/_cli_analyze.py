"""``mfkit analyze``: thin wiring from arguments to the library and back to an exit code."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .analysis.document import analyze as analyze_response
from .cli import EXIT_HELP, app
from .errors import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, InputError
from .inputs import DEFAULT_MAX_SIZE, iter_inputs
from .report import render_error_json, render_error_text, render_json_line, render_text, summary_line


@app.command("analyze", help="Analyze saved manifests: files, folders (recursive), capture folders, "
                             "curl -i transcripts, or - for stdin. " + EXIT_HELP)
def analyze_cmd(
    paths: Annotated[list[str], typer.Argument(help="files, folders, or - for stdin")],
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object per document per line, keys sorted")] = False,
    max_size: Annotated[int, typer.Option("--max-size", help="largest input read, in bytes", min=1)] = DEFAULT_MAX_SIZE,
    color: Annotated[bool, typer.Option("--color/--no-color", help="colour the text report")] = False,
) -> None:
    out = sys.stdout.buffer
    done, unreadable, bad = [], 0, False
    for item in iter_inputs(paths, max_size=max_size):
        if isinstance(item, InputError):
            unreadable += 1
            source = getattr(item, "source", "?")
            out.write(render_error_json(source, item.to_dict()) if json_out
                      else render_error_text(source, item.to_dict()).encode())
            continue
        result = analyze_response(item)
        done.append(result)
        bad |= not result.ok
        out.write(render_json_line(result) if json_out else render_text(result, color=color).encode() + b"\n")
        out.flush()
    if not json_out:
        out.write(summary_line(done, unreadable).encode())
    raise typer.Exit(EXIT_INPUT if unreadable else EXIT_FINDINGS if bad else EXIT_OK)
