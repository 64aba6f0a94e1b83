"""Turn what the user names (files, folders, ``-``) into :class:`Response` records.

Reading only; nothing here writes.  A folder is walked recursively in sorted order.
Capture sidecars (``*.meta.json``) are read with their body; a body file that has a
sidecar beside it is not read a second time on its own.  A file holding HTTP status
lines is split as a transcript (``curl -i`` output); anything else is a bare document.
Folder walks skip dot-files and files named like data or prose (``.jsonl``, ``.tsv``,
``.yaml``, ``.md``, ``.pem``...); a file named on the command line is always read.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from .capture import BODY_SUFFIX, is_capture_meta, read_capture
from .core.http import Response
from .core.transcript import looks_like_transcript, split_transcript
from .errors import InputError, UsageError
from .limits import DEFAULT_MAX_SIZE

__all__ = ["DEFAULT_MAX_SIZE", "iter_inputs", "read_path", "read_bytes_input"]

_SKIP = {"SHA256SUMS", ".lock"}
# Folder walks skip files that are plainly not saved responses (named files are always read).
_SKIP_SUFFIXES = (".jsonl", ".tsv", ".csv", ".yaml", ".yml", ".md", ".pem", ".crt", ".key", ".py", ".ipynb")


def read_bytes_input(data: bytes, source: str) -> list[Response]:
    """Split ``data`` into responses: a transcript gives several, anything else one."""
    if looks_like_transcript(data):
        parts = split_transcript(data)
        if parts:
            return [
                Response(source=f"{source}#{i}", body=p.body, status=p.status, headers=p.headers, url=p.url,
                         method=p.method, body_offset=p.body_offset,
                         meta={"transcript": True, "bounded": p.bounded, "declared_length": p.declared_length,
                               "framing": list(p.notes)})
                for i, p in enumerate(parts, 1)
            ]
    return [Response(source=source, body=data)]


def _read_file(path: Path, max_size: int) -> bytes:
    try:
        info = path.stat()
        # FIFOs, sockets and devices could block forever or never end: regular files only.
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path}: not a regular file", code="input.not-regular",
                             hint="copy the evidence into a regular file first")
        if info.st_size > max_size:
            raise InputError(f"{path}: {info.st_size} bytes is over the limit of {max_size}", code="input.too-large",
                             hint="raise it with --max-size")
        with open(path, "rb") as fh:
            data = fh.read(max_size + 1)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}", code="input.unreadable") from exc
    if len(data) > max_size:  # grew while being read
        raise InputError(f"{path}: over the limit of {max_size} bytes", code="input.too-large",
                         hint="raise it with --max-size")
    return data


def read_path(path: Path, *, max_size: int = DEFAULT_MAX_SIZE) -> list[Response]:
    """Read one file (bare document, transcript or capture sidecar)."""
    if is_capture_meta(path):
        return [read_capture(path, max_size=max_size)]
    return read_bytes_input(_read_file(path, max_size), str(path))


def _walk(folder: Path, errors: list[OSError]) -> Iterator[Path]:
    # A folder that cannot be listed is reported, never skipped in silence.
    for root, dirs, files in os.walk(folder, onerror=errors.append):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        names = set(files)
        paired = any(n.endswith(".meta.json") for n in names)
        for n in sorted(files):
            if n.startswith(".") or n in _SKIP or n.endswith(_SKIP_SUFFIXES):
                continue
            if n.endswith(BODY_SUFFIX) and paired:
                continue  # read through its sidecar
            yield Path(root) / n


def iter_inputs(paths: list[str], *, max_size: int = DEFAULT_MAX_SIZE, stdin=None) -> Iterator[Response | InputError]:
    """Yield a :class:`Response` per document, or the :class:`InputError` of an input that cannot be read.

    Errors are yielded, not raised, so one bad input does not stop the others.
    """
    if paths.count("-") > 1:
        raise UsageError("'-' (standard input) can be given only once", code="usage.stdin-twice")
    for name in paths:
        if name == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            data = stream.read(max_size + 1)
            if len(data) > max_size:
                err = InputError(f"stdin: over the limit of {max_size} bytes", code="input.too-large",
                                 hint="raise it with --max-size")
                err.source = "-"  # type: ignore[attr-defined]
                yield err
                continue
            yield from read_bytes_input(data, "-")
            continue
        path = Path(name)
        try:
            is_dir = path.is_dir()
        except OSError as exc:  # e.g. a name too long for the file system
            err = InputError(f"{name[:200]}: {exc.strerror or exc}", code="input.unreadable")
            err.source = name  # type: ignore[attr-defined]
            yield err
            continue
        if is_dir:
            found = False
            walk_errors: list[OSError] = []
            for item in _walk(path, walk_errors):
                found = True
                try:
                    yield from read_path(item, max_size=max_size)
                except InputError as exc:
                    exc.source = str(item)  # type: ignore[attr-defined]
                    yield exc
            for oserr in walk_errors:
                err = InputError(f"{oserr.filename}: folder cannot be read ({oserr.strerror})", code="input.unreadable")
                err.source = str(oserr.filename)  # type: ignore[attr-defined]
                yield err
            if not found and not walk_errors:
                err = InputError(f"{path}: folder holds no files", code="input.empty-folder")
                err.source = name  # type: ignore[attr-defined]
                yield err
            continue
        try:
            yield from read_path(path, max_size=max_size)
        except InputError as exc:
            exc.source = name  # type: ignore[attr-defined]
            yield exc
