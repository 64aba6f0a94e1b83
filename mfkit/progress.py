"""How a fetch run reports progress (kept apart so the CLI can load it without the network stack)."""

from __future__ import annotations

__all__ = ["Progress"]


class Progress:
    """Where a run reports progress. The default does nothing; the CLI draws a bar or lines."""

    def message(self, text: str) -> None:
        """A one-line note (retries, warnings, failures)."""

    def start(self, total: int) -> None:
        """``total`` manifests are about to be fetched."""

    def advance(self, label: str, outcome: str) -> None:
        """One of them is done: ``outcome`` is ``fetched``, ``skipped`` or ``failed``."""
