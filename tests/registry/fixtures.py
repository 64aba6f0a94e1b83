"""pytest fixtures for the real-registry tests (``@pytest.mark.registry``).

``registry`` starts docker-registry + the token service once per session (see harness.py)
and yields the :class:`~tests.registry.harness.Harness`. Without the binary it skips loudly.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from .harness import Harness, HarnessError, registry_binary

__all__ = ["registry"]


@pytest.fixture(scope="session")
def registry() -> Iterator[Harness]:
    """A running registry on 127.0.0.1 with the fixture images pushed."""
    if not registry_binary():
        pytest.skip("SKIPPED REAL-REGISTRY TESTS: `docker-registry` is not installed "
                    "(run `make registry-deps` as root, or apt-get install docker-registry)")
    try:
        harness = Harness.start()
    except HarnessError as exc:
        pytest.skip(f"SKIPPED REAL-REGISTRY TESTS: docker-registry did not start: {exc}")
    try:
        yield harness
    finally:
        harness.stop()
