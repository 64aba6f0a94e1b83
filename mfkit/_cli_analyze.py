"""``mfkit analyze``: thin wiring from arguments to the library and back to an exit code."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer

from .cli import EXIT_HELP, app
from .errors import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, InputError, UsageError

from .limits import DEFAULT_MAX_SIZE


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror}", code="usage.trust-file") from exc


def trust_policy(trust_ca: list[Path], trust_key: list[str], trust_keys: list[Path]):
    """Build the trust policy from the command-line options (reads the named files)."""
    from .core.trust import KEY_ID, TrustPolicy, parse_roots, parse_trust_keys

    for kid in trust_key:
        if not KEY_ID.fullmatch(kid):
            raise UsageError(f"--trust-key {kid!r} is not a libtrust key ID",
                             code="usage.trust-key", hint="12 groups of 4 base32 characters: ABCD:EFGH:...:WXYZ")
    keys: set[str] = set(trust_key)
    roots: list = []
    for option, paths, parse in (("--trust-keys", trust_keys, parse_trust_keys), ("--trust-ca", trust_ca, parse_roots)):
        for path in paths:
            try:
                found = parse(_read(path, option))
            except ValueError as exc:
                hint = ("a JWK set, a JWK, or PEM public keys / certificates" if option == "--trust-keys"
                        else "PEM root certificates (-----BEGIN CERTIFICATE-----)")
                raise UsageError(f"{option} {path}: {exc}", code="usage.trust-file", hint=hint) from None
            if option == "--trust-keys":
                keys |= found
            else:
                roots.extend(found)
    return TrustPolicy(frozenset(keys), tuple(roots))


@app.command("analyze", help="Analyze saved manifests: files, folders (recursive), capture folders, "
                             "curl -i transcripts, or - for stdin. Validity (verified) and trust (trusted) "
                             "are separate: nothing is trusted without --trust-key, --trust-keys or --trust-ca. "
                             + EXIT_HELP)
def analyze_cmd(
    paths: Annotated[list[str], typer.Argument(help="files, folders, or - for stdin")],
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object per document per line, keys sorted")] = False,
    max_size: Annotated[int, typer.Option("--max-size", help="largest input read, in bytes", min=1)] = DEFAULT_MAX_SIZE,
    trust_ca: Annotated[list[Path], typer.Option("--trust-ca", help="PEM root(s) for x5c chains (repeatable)")] = [],  # noqa: B006
    trust_key: Annotated[list[str], typer.Option("--trust-key", help="a trusted libtrust key ID (repeatable)")] = [],  # noqa: B006
    trust_keys: Annotated[list[Path], typer.Option("--trust-keys", help="JWK set or PEM public keys to trust")] = [],  # noqa: B006
    require_trusted: Annotated[bool, typer.Option("--require-trusted",
                                                  help="exit 1 unless every manifest is signed and trusted")] = False,
    color: Annotated[bool, typer.Option("--color/--no-color", help="colour the text report")] = False,
) -> None:
    from .analysis.document import analyze as analyze_response
    from .inputs import iter_inputs
    from .report import render_error_json, render_error_text, render_json_line, render_text, summary_line

    policy = trust_policy(trust_ca, trust_key, trust_keys)
    now = dt.datetime.now(dt.timezone.utc)  # read once: every check of this run uses the same "now"
    out = sys.stdout.buffer
    done, unreadable, bad = [], 0, False
    for item in iter_inputs(paths, max_size=max_size):
        if isinstance(item, InputError):
            unreadable += 1
            source = getattr(item, "source", "?")
            out.write(render_error_json(source, item.to_dict()) if json_out
                      else render_error_text(source, item.to_dict()).encode())
            continue
        try:
            result = analyze_response(item, policy=policy, now=now)
            line = render_json_line(result) if json_out else render_text(result, color=color).encode() + b"\n"
        except Exception as exc:  # noqa: BLE001 - a bug must not hide the inputs after this one
            unreadable += 1
            err = {"code": "internal", "message": f"{type(exc).__name__}: {exc}"[:300]}
            out.write(render_error_json(item.source, err) if json_out else render_error_text(item.source, err).encode())
            continue
        done.append(result)
        bad |= not result.ok or (require_trusted and result.is_manifest and result.trusted is not True)
        out.write(line)
        out.flush()
    if not json_out:
        out.write(summary_line(done, unreadable).encode())
    raise typer.Exit(EXIT_INPUT if unreadable else EXIT_FINDINGS if bad else EXIT_OK)
