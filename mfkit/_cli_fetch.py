"""``mfkit fetch``: thin wiring from arguments to :func:`mfkit.fetch.fetch` and an exit code.

Passwords are read from stdin (``--password-stdin``) or a hidden prompt, never from the
command line, and are never printed.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli import app
from .errors import MfkitError, UsageError
from .fetch import FetchOptions, fetch, parse_accept
from .remote import MANIFEST_LIMIT

__all__ = ["fetch_cmd"]

FETCH_EXIT_HELP = "Exit codes: 0 everything fetched and saved; 2 usage error; 3 something could not be fetched or saved."


def _read_password(username: str | None, password_stdin: bool) -> str | None:
    if password_stdin and username is None:
        raise UsageError("--password-stdin needs -u/--username", code="usage.credentials")
    if username is None:
        return None
    if password_stdin:
        data = sys.stdin.readline()
        password = data[:-1] if data.endswith("\n") else data
        password = password[:-1] if password.endswith("\r") else password
        if not password:
            raise UsageError("--password-stdin: no password on stdin", code="usage.credentials")
        return password
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {username}: ")
        if password:
            return password
    raise UsageError("-u/--username needs the password on stdin: add --password-stdin "
                     "(e.g. `printf %s \"$PW\" | mfkit fetch -u USER --password-stdin ...`)",
                     code="usage.credentials")


@app.command("fetch", help="Download manifests (with their config blobs, tag lists and redacted token "
                           "answers) from a registry into a capture folder for `mfkit analyze`. " + FETCH_EXIT_HELP)
def fetch_cmd(
    references: Annotated[list[str], typer.Argument(help="image references such as host:port/name:tag or name@sha256:...; "
                                                        "with --all-tags, repository names", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="capture folder (created if needed)",
                                         show_default=False)],
    all_tags: Annotated[bool, typer.Option("--all-tags", help="fetch every tag of each repository")] = False,
    username: Annotated[Optional[str], typer.Option("-u", "--username", help="registry user name")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
    accept: Annotated[Optional[str], typer.Option(
        "--accept", help="media types to accept: schema1, schema2, oci, list, index, all, or explicit "
                         "types, comma-separated (default: all)")] = None,
    plain_http: Annotated[bool, typer.Option("--plain-http", help="use http instead of https")] = False,
    insecure: Annotated[bool, typer.Option("--insecure", help="do not verify TLS certificates")] = False,
    platform: Annotated[Optional[str], typer.Option("--platform", help="follow the list/index entry for "
                                                                       "os/arch or os/arch/variant")] = None,
    all_platforms: Annotated[bool, typer.Option("--all-platforms", help="follow every list/index entry")] = False,
    max_manifest_size: Annotated[int, typer.Option("--max-manifest-size", min=1,
                                                   help="largest manifest read, in bytes")] = MANIFEST_LIMIT,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="seconds per request")] = 30.0,
    json_out: Annotated[bool, typer.Option("--json", help="print the summary as one JSON object")] = False,
) -> None:
    try:
        password = _read_password(username, password_stdin)
        options = FetchOptions(output=output, all_tags=all_tags, accept=parse_accept(accept), username=username,
                               password=password, plain_http=plain_http, insecure=insecure, platform=platform,
                               all_platforms=all_platforms, max_manifest_size=max_manifest_size, timeout=timeout)
        summary = fetch(references, options, progress=lambda msg: typer.echo(f"mfkit: {msg}", err=True))
    except MfkitError as exc:
        typer.echo(f"mfkit: error: {exc.diagnostics()}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if json_out:
        typer.echo(json.dumps(summary.to_dict(), sort_keys=True))
    else:
        typer.echo(summary.text())
    raise typer.Exit(summary.exit_code)

