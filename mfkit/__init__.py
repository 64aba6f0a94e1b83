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

from .analysis.chain import ChainResult, build_chain
from .analysis.document import Analysis, Digests, analyze
from .analysis.layers import EMPTY_BLOBS, LayerStats, layer_stats
from .core.findings import Finding
from .core.http import Response
from .core.jws import Envelope, SignatureResult, open_envelope
from .core.keys import key_id
from .core.manifest import KINDS, HistoryEntry, Schema1Manifest
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
    "MfkitError",
    "UsageError",
    "InputError",
    "FetchError",
    "RegistryError",
    "AuthError",
    "PolicyError",
    "CaptureError",
]


def analyze_bytes(data: bytes, source: str = "<bytes>", headers: dict[str, str] | None = None) -> Analysis:
    """Analyze one document given as bytes (with optional response headers).

    Args:
        data: the exact bytes.
        source: a label for reports.
        headers: e.g. ``{"Content-Type": ..., "Docker-Content-Digest": ...}``.

    Returns:
        The :class:`Analysis`.
    """
    return analyze(Response(source=source, body=data, headers=tuple((headers or {}).items())))


def load(*paths: str, max_size: int | None = None) -> list[Analysis]:
    """Read and analyze every document under ``paths`` (files, folders, transcripts, captures).

    Raises:
        InputError: the first input that cannot be read (use the CLI to carry on past it).
    """
    from .inputs import DEFAULT_MAX_SIZE, iter_inputs

    out = []
    for item in iter_inputs([str(p) for p in paths], max_size=max_size or DEFAULT_MAX_SIZE):
        if isinstance(item, InputError):
            raise item
        out.append(analyze(item))
    return out


def __dir__() -> list[str]:
    return list(__all__)
