"""Shared test configuration: paths to the shipped fixtures and the shared corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.registry.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SHARED = Path(os.environ.get("MFKIT_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus; tests that need it skip loudly when it is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS} (set MFKIT_SHARED)")
    return CORPUS
