"""The typer command line: parse arguments, call the library, print, exit with a code.

Exit codes (also in ``mfkit --help`` and the README):
  0  every input analyzed, every signed one verified, no error finding
  1  a verification failed or there is an error-level finding
  2  usage error
  3  an input could not be read, fetched or written
"""

from __future__ import annotations

import sys

import typer

from .errors import EXIT_INPUT, EXIT_USAGE, MfkitError

EXIT_HELP = (
    "Exit codes: 0 all inputs analyzed and verified, no error finding; "
    "1 a verification failed or an error-level finding; 2 usage error; "
    "3 an input could not be read, fetched or written."
)

app = typer.Typer(
    name="mfkit",
    help="Offline, evidence-grade analysis of container-registry manifests. " + EXIT_HELP,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"mfkit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="print the version and exit", callback=_version,
                                 is_eager=True),
) -> None:
    """Offline, evidence-grade analysis of container-registry manifests."""


# --- commands are registered by the modules below (one module per command family) ---
from . import _cli_analyze  # noqa: E402,F401  analyze
from . import _cli_fetch  # noqa: E402,F401  fetch
from . import _cli_history  # noqa: E402,F401  history, corpus, diff, report


def main() -> None:
    """Console-script entry point: run the app and never print a traceback."""
    try:
        app()
    except MfkitError as exc:
        typer.echo(f"mfkit: error: {exc.diagnostics()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("mfkit: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last resort: a bug, reported without a traceback
        typer.echo(f"mfkit: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(EXIT_INPUT)


__all__ = ["app", "main", "EXIT_USAGE"]
