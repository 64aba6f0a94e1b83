"""The public surface is explicit: ``__all__`` is exactly what notebooks may use."""

from __future__ import annotations

import mfkit

EXPECTED = {
    "__version__", "load", "analyze", "analyze_bytes", "Analysis", "Digests", "Response", "Envelope",
    "SignatureResult", "Schema1Manifest", "HistoryEntry", "ChainResult", "LayerStats", "Finding", "KINDS",
    "EMPTY_BLOBS", "build_chain", "layer_stats", "open_envelope", "key_id", "TrustPolicy", "TrustDecision",
    "MfkitError", "UsageError", "InputError", "FetchError", "RegistryError", "AuthError", "PolicyError",
    "CaptureError",
    "history", "corpus", "diff", "History", "HistoryRow", "Corpus", "DiffResult",
}


def test_all_is_exactly_the_public_api():
    assert set(mfkit.__all__) == EXPECTED
    assert len(mfkit.__all__) == len(set(mfkit.__all__))
    for name in mfkit.__all__:
        assert hasattr(mfkit, name), name


def test_dir_shows_only_the_public_api():
    assert set(dir(mfkit)) == EXPECTED


def test_public_callables_are_documented():
    for name in mfkit.__all__:
        obj = getattr(mfkit, name)
        if callable(obj):
            assert (obj.__doc__ or "").strip(), name
