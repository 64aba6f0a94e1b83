"""Small, named tamperings of a signed document, shared by the tests."""

from __future__ import annotations


def bitflip(doc: bytes) -> bytes:
    """Change one character inside the first signature string (the signature no longer verifies)."""
    i = doc.index(b'"signature": "') + len(b'"signature": "') + 5
    return doc[:i] + (b"A" if doc[i:i + 1] != b"A" else b"B") + doc[i + 1:]


def forged(doc: bytes) -> bytes:
    """Insert an unsigned fsLayers member between the signed range and the signatures."""
    j = doc.index(b'"signatures"')
    return doc[:j] + b'"fsLayers": [{"blobSum": "sha256:' + b"e" * 64 + b'"}],\n   ' + doc[j:]
