"""``mfkit fetch``: thin wiring from arguments to :func:`mfkit.fetch.fetch` and an exit code.

Passwords are read from stdin (``--password-stdin``) or a hidden prompt, never from the
command line, and are never printed. Progress goes to stderr (a bar on a terminal, plain
lines otherwise); the summary, once, to stdout.  What the summary lists (each item saved or
failed, each warning) is not repeated on stderr, except with ``--json`` where stderr is the only
human-readable account.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli import app
from .core.credentials import parse_creds_flag
from .core.printable import printable
from .errors import MfkitError, UsageError
from .limits import LIST_FETCH_LIMIT as LIST_LIMIT
from .limits import MANIFEST_FETCH_LIMIT as MANIFEST_LIMIT
from .limits import MAX_PAGES
from .progress import Progress

__all__ = ["fetch_cmd"]

EXIT_INTERRUPTED = 130
FETCH_EXIT_HELP = ("Exit codes: 0 everything fetched and saved; 2 usage error; 3 something could not be fetched "
                   "or saved; 130 interrupted (Ctrl-C; rerun with --all-tags on the same folder to resume).")


def _read_password(username: str | None, password_stdin: bool) -> str | None:
    if password_stdin and username is None:
        raise UsageError("--password-stdin needs -u USER (or --creds USER)", code="usage.credentials")
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
    raise UsageError("-u/--creds needs the password on stdin: add --password-stdin "
                     "(e.g. `printf %s \"$PW\" | mfkit fetch -u USER --password-stdin ...`)",
                     code="usage.credentials")


# Messages the text summary on stdout repeats in full: not echoed on stderr as well.
_IN_SUMMARY = ("saved ", "failed: ", "warning: ")


class _Lines(Progress):
    """Plain progress lines on stderr (pipes, logs): one ``[n/N]`` line per reference of a
    multi-reference run, and the notes the summary does not carry (retries, tag moves...)."""

    def __init__(self, summary_on_stdout: bool = True) -> None:
        self.total = 0
        self.done = 0
        self.summary_on_stdout = summary_on_stdout

    def message(self, text: str) -> None:
        if self.summary_on_stdout and text.startswith(_IN_SUMMARY):
            return
        self._line(f"mfkit: {printable(text)}")

    def start(self, total: int) -> None:
        self.total = total

    def advance(self, label: str, outcome: str) -> None:
        self.done += 1
        if self.total > 1:
            self._line(f"mfkit: [{self.done}/{self.total}] {outcome} {printable(label)}")

    @staticmethod
    def _line(text: str) -> None:
        # A plain write: typer.echo probes the terminal on every call, which costs more
        # than the fetch itself on a 500-tag run.
        try:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


class _Bar(Progress):
    """A rich progress bar on stderr for multi-tag runs on a terminal."""

    def __init__(self, summary_on_stdout: bool = True) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, \
            TimeElapsedColumn

        self.console = Console(stderr=True)
        self.bar = RichProgress(TextColumn("[bold]fetch"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.description}"), TimeElapsedColumn(), console=self.console,
                                transient=True)
        self.task = None
        self.summary_on_stdout = summary_on_stdout

    def message(self, text: str) -> None:
        if self.summary_on_stdout and text.startswith(_IN_SUMMARY):
            return  # the summary on stdout lists it
        if text.startswith(("saved ", "failed:", "warning")) or self.task is None:
            if text.startswith("saved ") and self.task is not None:
                return  # the bar says it
            self.console.print(f"mfkit: {printable(text)}", markup=False, highlight=False)

    def start(self, total: int) -> None:
        if total > 1:
            self.bar.start()
            self.task = self.bar.add_task("", total=total)

    def advance(self, label: str, outcome: str) -> None:
        if self.task is not None:
            self.bar.update(self.task, advance=1, description=f"{outcome} {printable(label)}")

    def close(self) -> None:
        if self.task is not None:
            self.bar.stop()


@app.command("fetch", help="Download manifests (with their config blobs, tag lists and redacted token "
                           "answers) from a registry into a capture folder for `mfkit analyze`. " + FETCH_EXIT_HELP)
def fetch_cmd(
    references: Annotated[list[str], typer.Argument(help="image references such as host:port/name:tag or name@sha256:...; "
                                                        "with --all-tags, repository names; with --catalog, "
                                                        "registry hosts", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="capture folder (created if needed)",
                                         show_default=False)],
    all_tags: Annotated[bool, typer.Option("--all-tags", help="fetch every tag of each repository; a rerun on the "
                                                              "same folder skips tags already captured")] = False,
    catalog: Annotated[bool, typer.Option("--catalog", help="save the registry's /v2/_catalog pages; with "
                                                            "--all-tags also fetch every tag of every repository")] = False,
    creds: Annotated[Optional[str], typer.Option("--creds", help="same as -u USER (USER:PASS is "
                                                                 "refused)")] = None,
    username: Annotated[Optional[str], typer.Option("-u", "--username", help="registry user name; the "
                                                                             "password comes from "
                                                                             "--password-stdin")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
    no_creds: Annotated[bool, typer.Option("--no-creds", help="anonymous: read no credentials file or "
                                                              "helper")] = False,
    accept: Annotated[Optional[str], typer.Option(
        "--accept", help="media types to accept: schema1, schema2, oci, list, index, all, or explicit "
                         "types, comma-separated (default: all)")] = None,
    plain_http: Annotated[bool, typer.Option("--plain-http", help="use http instead of https")] = False,
    insecure: Annotated[bool, typer.Option("--insecure", help="do not verify TLS certificates")] = False,
    ca_file: Annotated[Optional[Path], typer.Option("--ca-file", help="PEM file of extra CA certificates "
                                                                      "to trust")] = None,
    platform: Annotated[Optional[str], typer.Option("--platform", help="follow the list/index entry for "
                                                                       "os/arch or os/arch/variant")] = None,
    all_platforms: Annotated[bool, typer.Option("--all-platforms", help="follow every list/index entry")] = False,
    max_manifest_size: Annotated[int, typer.Option("--max-manifest-size", min=1,
                                                   help="largest manifest read, in bytes")] = MANIFEST_LIMIT,
    max_list_size: Annotated[int, typer.Option("--max-list-size", min=1,
                                               help="largest tag-list or catalog page read, in bytes "
                                                    "(default 32 MiB)")] = LIST_LIMIT,
    timeout: Annotated[Optional[float], typer.Option("--timeout", min=0.1, help="shortcut: connect and read "
                                                                                "timeout, seconds")] = None,
    connect_timeout: Annotated[Optional[float], typer.Option("--connect-timeout", min=0.1,
                                                             help="seconds to connect (default 30)")] = None,
    read_timeout: Annotated[Optional[float], typer.Option("--read-timeout", min=0.1,
                                                          help="seconds without data while reading (default 30)")] = None,
    total_timeout: Annotated[Optional[float], typer.Option(
        "--total-timeout", min=0.1, help="seconds one request attempt may take in all, even when data keeps "
                                         "trickling in (default: connect timeout + 4 x read timeout)")] = None,
    retries: Annotated[int, typer.Option("--retries", min=0, max=20, help="retries after a 429, 502/503/504, "
                                                                         "reset, timeout or bad body")] = 4,
    retry_base: Annotated[float, typer.Option("--retry-base", min=0.0, help="first backoff ceiling, seconds "
                                                                            "(doubled per retry, full jitter)")] = 0.5,
    retry_max_wait: Annotated[float, typer.Option("--retry-max-wait", min=0.0,
                                                  help="cap of one wait, Retry-After included, seconds")] = 30.0,
    max_pages: Annotated[int, typer.Option("--max-pages", min=1, help="most tag/catalog pages read per "
                                                                      "listing")] = MAX_PAGES,
    force: Annotated[bool, typer.Option("--force", help="also fetch tags that break the tag grammar")] = False,
    refetch: Annotated[bool, typer.Option("--refetch", help="with --all-tags: fetch tags already captured "
                                                            "in the folder again")] = False,
    jobs: Annotated[Optional[int], typer.Option("-j", "--jobs", min=1, max=64,
                                                help="parallel fetches per run (default 4)")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", min=1, max=64, hidden=True,
                                                       help="alias of --jobs")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the summary as one JSON object")] = False,
) -> None:
    from .fetch import FetchOptions, fetch, parse_accept  # the network stack loads only for `fetch`

    progress: Progress = _Lines(summary_on_stdout=not json_out)
    try:
        if creds is not None and username is not None:
            raise UsageError("give --creds or -u/--username, not both", code="usage.credentials")
        user = parse_creds_flag(creds)[0] if creds is not None else username
        if no_creds and user is not None:
            raise UsageError("--no-creds and --creds/-u contradict each other", code="usage.credentials")
        password = _read_password(user, password_stdin)
        options = FetchOptions(
            output=output, all_tags=all_tags, catalog=catalog, accept=parse_accept(accept), username=user,
            password=password, no_creds=no_creds, plain_http=plain_http, insecure=insecure,
            ca_file=str(ca_file) if ca_file else None, platform=platform, all_platforms=all_platforms,
            max_manifest_size=max_manifest_size, max_list_size=max_list_size, timeout=timeout or 30.0,
            total_timeout=total_timeout,
            connect_timeout=connect_timeout or timeout, read_timeout=read_timeout or timeout,
            retries=retries, retry_base=retry_base, retry_max_wait=retry_max_wait, max_pages=max_pages,
            force=force, refetch=refetch, concurrency=jobs or concurrency or 4)
        if sys.stderr.isatty() and (all_tags or catalog or len(references) > 1):
            progress = _Bar(summary_on_stdout=not json_out)
        try:
            summary = fetch(references, options, progress=progress)
        finally:
            if isinstance(progress, _Bar):
                progress.close()
    except MfkitError as exc:
        hint = f"\nhint: {printable(exc.hint)}" if exc.hint else ""
        typer.echo(f"mfkit: error: {printable(exc.message)}{hint}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        # click would print "Aborted!" and exit 1; an interrupted fetch exits 130
        typer.echo("mfkit: interrupted; files already saved are complete; rerun the same command to resume",
                   err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if json_out:
        typer.echo(json.dumps(summary.to_dict(), sort_keys=True))
    else:
        typer.echo(summary.text())
    raise typer.Exit(summary.exit_code)
