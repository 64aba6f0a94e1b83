"""mfkit: offline, evidence-grade analysis of container-registry manifests.

Typical notebook use::

    import mfkit
    docs = mfkit.load("capture-dir/")        # every document found, analyzed
    doc = docs[0]
    doc.verified, doc.digests.payload, doc.signatures
    doc.chain.graph                          # networkx.DiGraph of v1 ids, parent -> child

The public surface is exactly ``__all__`` (checked by a test).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (
    AuthError,
    CaptureError,
    FetchError,
    InputError,
    MfkitError,
    PolicyError,
    RegistryError,
    UsageError,
)

if TYPE_CHECKING:
    from .analysis.chain import ChainResult, build_chain
    from .analysis.corpus import Corpus
    from .analysis.diff import DiffResult
    from .analysis.document import Analysis, Digests, analyze
    from .analysis.history import History, HistoryRow
    from .analysis.layers import EMPTY_BLOBS, LayerStats, layer_stats
    from .core.findings import Finding
    from .core.http import Response
    from .core.jws import Envelope, SignatureResult, open_envelope
    from .core.keys import key_id
    from .core.manifest import KINDS, HistoryEntry, Schema1Manifest
    from .core.trust import TrustDecision, TrustPolicy

# Loaded on first use (PEP 562), so that `mfkit fetch` does not pay for networkx or the
# analysis stack at start-up.
_LAZY = {
    "ChainResult": "analysis.chain", "build_chain": "analysis.chain",
    "Corpus": "analysis.corpus", "DiffResult": "analysis.diff",
    "Analysis": "analysis.document", "Digests": "analysis.document", "analyze": "analysis.document",
    "History": "analysis.history", "HistoryRow": "analysis.history",
    "EMPTY_BLOBS": "analysis.layers", "LayerStats": "analysis.layers", "layer_stats": "analysis.layers",
    "Finding": "core.findings", "Response": "core.http",
    "Envelope": "core.jws", "SignatureResult": "core.jws", "open_envelope": "core.jws",
    "key_id": "core.keys", "KINDS": "core.manifest", "HistoryEntry": "core.manifest",
    "Schema1Manifest": "core.manifest", "TrustDecision": "core.trust", "TrustPolicy": "core.trust",
}


def _paths(args: tuple) -> list[str]:
    """Paths given one by one or as a list; anything else is a caller's mistake."""
    import os

    out: list[str] = []
    for item in args:
        if isinstance(item, (list, tuple)):
            out.extend(_paths(tuple(item)))
        elif isinstance(item, (str, os.PathLike)):
            out.append(os.fspath(item))
        else:
            raise TypeError(f"expected file or folder paths, got {type(item).__name__}")
    return out


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mfkit' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "__version__",
    "load",
    "analyze",
    "analyze_bytes",
    "Analysis",
    "Digests",
    "Response",
    "Envelope",
    "SignatureResult",
    "Schema1Manifest",
    "HistoryEntry",
    "ChainResult",
    "LayerStats",
    "Finding",
    "KINDS",
    "EMPTY_BLOBS",
    "build_chain",
    "layer_stats",
    "open_envelope",
    "key_id",
    "TrustPolicy",
    "TrustDecision",
    "MfkitError",
    "UsageError",
    "InputError",
    "FetchError",
    "RegistryError",
    "AuthError",
    "PolicyError",
    "CaptureError",
    "history",
    "corpus",
    "diff",
    "History",
    "HistoryRow",
    "Corpus",
    "DiffResult",
]


def analyze_bytes(data: bytes, source: str = "<bytes>", headers: dict[str, str] | None = None, *,
                  policy: TrustPolicy | None = None) -> Analysis:
    """Analyze one document given as bytes (with optional response headers).

    Args:
        data: the exact bytes.
        source: a label for reports.
        headers: e.g. ``{"Content-Type": ..., "Docker-Content-Digest": ...}``.
        policy: what to trust; nothing is trusted without one.

    Returns:
        The :class:`Analysis` (signature times are compared with the current time).
    """
    import datetime as _dt

    from .analysis.document import analyze as _analyze
    from .core.http import Response as _Response

    return _analyze(_Response(source=source, body=data, headers=tuple((headers or {}).items())), policy=policy,
                    now=_dt.datetime.now(_dt.timezone.utc))


def load(*paths: str, max_size: int | None = None, policy: TrustPolicy | None = None) -> list[Analysis]:
    """Read and analyze every document under ``paths`` (files, folders, transcripts, captures).

    Args:
        paths: files, folders or transcripts.
        max_size: the largest input read, in bytes.
        policy: what to trust (:class:`TrustPolicy`); nothing is trusted without one.

    Raises:
        InputError: the first input that cannot be read (use the CLI to carry on past it).
    """
    import datetime as _dt

    from .analysis.document import analyze as _analyze
    from .inputs import DEFAULT_MAX_SIZE, iter_inputs

    now = _dt.datetime.now(_dt.timezone.utc)
    out = []
    for item in iter_inputs(_paths(paths), max_size=max_size or DEFAULT_MAX_SIZE):
        if isinstance(item, InputError):
            raise item
        out.append(_analyze(item, policy=policy, now=now))
    return out


def history(*paths: str, config: str | None = None) -> list[History]:
    """The ``docker history`` view of every document under ``paths`` (rows newest first).

    Args:
        paths: files, folders, transcripts or capture folders.
        config: an image config file for schema 2 / OCI manifests (default: found among the inputs by digest).

    Raises:
        InputError: the first input that cannot be read.
    """
    from .explore import history as _history

    return _history(*_paths(paths), config=config)


def corpus(*paths: str, jobs: int = 1) -> Corpus:
    """Read many documents together: ``.graph``, ``.base_groups``, ``.keys``, ``.blobs``, ``.tags``.

    Args:
        paths: folders or files (read recursively, sorted).
        jobs: worker processes; the result does not depend on it.
    """
    from .explore import corpus as _corpus

    return _corpus(*_paths(paths), jobs=jobs)


def diff(a: str, b: str) -> DiffResult:
    """Compare two captures of one reference: ``re-signed`` (same payload) or ``different-image``, and what changed.

    Raises:
        InputError: unreadable input.  UsageError: an input holds no manifest or several.
    """
    from .explore import diff as _diff

    return _diff(a, b)


def __dir__() -> list[str]:
    return list(__all__)
