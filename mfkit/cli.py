"""The typer command line: parse arguments, call the library, print, exit with a code.

Exit codes (also in ``mfkit --help`` and the README):
  0  every input analyzed, every signed one verified, no error finding
  1  a verification failed or there is an error-level finding
  2  usage error
  3  an input could not be read, fetched or written
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def _quiet_interrupt(_signum: int, _frame: object) -> None:
    os._exit(130)  # Ctrl-C while starting up: nothing written yet, no traceback


if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, _quiet_interrupt)

import typer  # noqa: E402

from .core.printable import printable  # noqa: E402
from .errors import EXIT_INPUT, EXIT_USAGE, MfkitError  # noqa: E402

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


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    return value if isinstance(value, int) else 1


def main() -> None:
    """Console-script entry point: run the app, never print a traceback, exit with the documented code.

    Ctrl-C exits 130.  Captures are written atomically, so leaving at once never leaves a
    partial file; worker threads still blocked on a slow network are not waited for.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 0
    try:
        app()
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except MfkitError as exc:
        typer.echo(f"mfkit: error: {printable(exc.diagnostics())}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        typer.echo("mfkit: interrupted", err=True)
        code = 130
    except Exception as exc:  # noqa: BLE001 - last resort: a bug, reported without a traceback
        typer.echo(printable(f"mfkit: internal error: {type(exc).__name__}: {exc}")[:2000], err=True)
        code = EXIT_INPUT
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if threading.active_count() > 1:
        os._exit(code)  # a worker stuck on a slow server must not keep the process alive
    sys.exit(code)


__all__ = ["app", "main", "EXIT_USAGE"]
