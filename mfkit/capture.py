"""Captures on disk: the only module of mfkit that writes files.

Layout (format version 1)::

    OUT/<host[_port]>/<repository>/<kind>/<ref>/<sha256-hex>.body
    OUT/<host[_port]>/<repository>/<kind>/<ref>/<time>-<sha256-hex[:12]>.meta.json
    OUT/<host[_port]>/<repository>/<kind>/<ref>/SHA256SUMS

``kind`` is ``manifests``, ``blobs``, ``tags``, ``catalog`` or ``token``.  The body file is
the exact bytes received (token responses excepted: their secrets are removed first, and
the sidecar says so); its name is its sha256, and ``SHA256SUMS`` lets ``sha256sum -c``
check every body of the folder.  Fetching the same reference twice writes a second
sidecar; an identical body is stored once.  Every file is written to a temporary name in
the same folder and then renamed, so an interrupted run never leaves a partial file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import orjson

from .core.http import Response
from .errors import CaptureError

__all__ = [
    "CAPTURE_FORMAT",
    "META_SUFFIX",
    "BODY_SUFFIX",
    "safe_component",
    "capture_dir",
    "atomic_write",
    "write_capture",
    "read_capture",
    "sync",
    "write_sums",
    "is_capture_meta",
]

CAPTURE_FORMAT = 1
_UMASK = os.umask(0o022)  # read once at import (single-threaded then) and put back
os.umask(_UMASK)
META_SUFFIX = ".meta.json"
BODY_SUFFIX = ".body"
_SAFE = re.compile(r"[A-Za-z0-9._-]")


def safe_component(text: str) -> str:
    """Return ``text`` as one safe path component.

    Every byte outside ``[A-Za-z0-9._-]`` is percent-encoded (so ``:`` becomes ``%3A``
    and ``/`` becomes ``%2F``); ``.``, ``..`` and the empty string are encoded too, so no
    tag or repository string can climb out of the capture folder.
    """
    out = []
    for ch in text:
        if _SAFE.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    name = "".join(out)
    if name in ("", ".", ".."):
        name = "".join(f"%{b:02X}" for b in text.encode("utf-8")) or "%00"
    return name[:200]


def capture_dir(root: Path, host: str, repository: str | None, kind: str, ref: str | None) -> Path:
    """Return the folder for one (host, repository, kind, ref), every part made safe."""
    parts = [safe_component(host.replace(":", "_"))]
    if repository:
        parts += [safe_component(p) for p in repository.split("/")]
    parts.append(safe_component(kind))
    if ref:
        parts.append(safe_component(ref))
    return root.joinpath(*parts)


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Args:
        path: the final name.
        data: the bytes.
        durable: fsync the file before the rename.  A batch writer may pass False and call
            :func:`sync` once at the end: the rename alone already guarantees that no
            partial file is ever visible.
    """
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_sums(folder: Path, durable: bool = True) -> None:
    """Rewrite ``SHA256SUMS`` of ``folder`` from the bodies it holds (``sha256sum -c`` checks them)."""
    lock = folder / ".lock"
    with open(lock, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        names = sorted(p.name for p in folder.glob("*" + BODY_SUFFIX))
        lines = "".join(f"{n[: -len(BODY_SUFFIX)]}  {n}\n" for n in names)
        atomic_write(folder / "SHA256SUMS", lines.encode(), durable=durable)


def sync() -> None:
    """Flush everything written so far to stable storage (one call at the end of a batch)."""
    os.sync()


def write_capture(folder: Path, body: bytes, meta: dict[str, Any], *, durable: bool = True,
                  sums: bool = True) -> Path:
    """Store one response: the body (once per sha256) and a new metadata sidecar.

    Args:
        folder: from :func:`capture_dir`.
        body: the bytes to keep.
        meta: the sidecar fields (request, time, status, headers, reference, grant...).
            ``body`` and ``mfkit_capture`` are filled in here.
        durable: fsync each file (see :func:`atomic_write`).
        sums: rewrite ``SHA256SUMS`` now; a batch writer may pass False and call
            :func:`write_sums` once per folder at the end.

    Returns:
        The path of the sidecar written.

    Raises:
        CaptureError: the disk refused.
    """
    hexd = hashlib.sha256(body).hexdigest()
    record = dict(meta)
    record["mfkit_capture"] = CAPTURE_FORMAT
    record["body"] = {"file": hexd + BODY_SUFFIX, "sha256": hexd, "length": len(body)}
    stamp = re.sub(r"[^0-9TZ]", "", str(meta.get("time", "")))[:22] or "0"
    try:
        body_path = folder / (hexd + BODY_SUFFIX)
        if not body_path.exists():
            atomic_write(body_path, body, durable=durable)
            if sums:
                write_sums(folder, durable)
        meta_path = folder / f"{stamp}-{hexd[:12]}{META_SUFFIX}"
        n = 1
        while meta_path.exists():
            n += 1
            meta_path = folder / f"{stamp}-{hexd[:12]}-{n}{META_SUFFIX}"
        atomic_write(meta_path, orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2),
                     durable=durable)
    except OSError as exc:
        raise CaptureError(f"cannot write capture in {folder}: {exc.strerror}", code="capture.write") from exc
    return meta_path


def is_capture_meta(path: Path) -> bool:
    """True when ``path`` is named like a capture sidecar."""
    return path.name.endswith(META_SUFFIX)


def read_capture(meta_path: Path, *, max_size: int | None = None) -> Response:
    """Read one capture back as a :class:`Response`.

    Raises:
        InputError: the sidecar is not a capture, or its body is missing or was altered.
    """
    from .errors import InputError

    try:
        record = orjson.loads(meta_path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise InputError(f"{meta_path}: not a readable capture sidecar ({exc})", code="input.capture") from exc
    if not isinstance(record, dict) or record.get("mfkit_capture") != CAPTURE_FORMAT:
        raise InputError(f"{meta_path}: not an mfkit capture (format {CAPTURE_FORMAT})", code="input.capture")
    info = record.get("body") or {}
    name = str(info.get("file", ""))
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"{meta_path}: capture names no body file", code="input.capture")
    body_path = meta_path.parent / name
    try:
        size = body_path.stat().st_size
        if max_size is not None and size > max_size:
            raise InputError(f"{body_path}: {size} bytes is over the limit of {max_size}",
                             code="input.too-large", hint="raise it with --max-size")
        body = body_path.read_bytes()
    except OSError as exc:
        raise InputError(f"{body_path}: capture body missing ({exc.strerror})", code="input.capture") from exc
    if hashlib.sha256(body).hexdigest() != info.get("sha256"):
        raise InputError(f"{body_path}: body does not match the sha256 in its sidecar", code="input.capture-altered",
                         hint="the capture was modified after it was written")
    req = record.get("request") or {}
    headers = tuple((str(k), str(v)) for k, v in record.get("headers") or [] if isinstance(k, str))
    return Response(
        source=str(meta_path),
        body=body,
        status=record.get("status"),
        headers=headers,
        url=req.get("url"),
        method=req.get("method"),
        accept=req.get("accept"),
        fetched_at=record.get("time"),
        reference=record.get("reference"),
        grant=record.get("grant"),
        meta={k: v for k, v in record.items() if k in ("kind", "redacted", "mfkit_capture", "body")},
    )
