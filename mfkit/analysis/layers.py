"""Layer dedupe: blobSums keyed by the exact digest string (spec §3.5, §3.9)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

__all__ = ["EMPTY_BLOBS", "LayerStats", "layer_stats"]

# Well-known digests of empty layer content (spec §3.5, checked by computation there).
EMPTY_BLOBS = {
    "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4": "gzipped empty tar (distribution placeholder)",
    "sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1": "gzipped empty tar, mtime 0",
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef": "empty tar, uncompressed (1024 zero bytes)",
    "sha256:84ff92691f909a05b224e1c56abb4864f01b4f8e3c854e4bb4c7baf1d3f6d652": "empty tar, uncompressed (10240 zero bytes)",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855": "empty blob (zero bytes)",
}


@dataclass(frozen=True, slots=True)
class LayerStats:
    """Counts and positions for one manifest's layer list (positions in wire order).

    Attributes:
        entries: number of layer entries.
        unique_blobs: number of distinct digests.
        repeated: digest -> positions, for digests listed more than once.
        empty_blobs: well-known empty-content digest -> positions.
        throwaway: positions marked ``throwaway`` (no filesystem layer at all).
    """

    entries: int
    unique_blobs: int
    repeated: dict[str, list[int]]
    empty_blobs: dict[str, list[int]]
    throwaway: tuple[int, ...]

    @property
    def empty(self) -> int:
        """Entries that add no content: throwaway, or a well-known empty blob."""
        marked = set(self.throwaway)
        for positions in self.empty_blobs.values():
            marked.update(positions)
        return len(marked)

    def to_dict(self) -> dict:
        """JSON form."""
        return {"entries": self.entries, "unique_blobs": self.unique_blobs, "empty": self.empty,
                "repeated": self.repeated, "empty_blobs": self.empty_blobs, "throwaway": list(self.throwaway)}


def layer_stats(blobs: list[str | None], throwaway: list[bool | None] | None = None) -> LayerStats:
    """Dedupe ``blobs`` (any order; positions refer to it)."""
    where: dict[str, list[int]] = defaultdict(list)
    for i, b in enumerate(blobs):
        if b is not None:
            where[b].append(i)
    return LayerStats(
        entries=len(blobs),
        unique_blobs=len(where),
        repeated={b: p for b, p in sorted(where.items()) if len(p) > 1},
        empty_blobs={b: p for b, p in sorted(where.items()) if b in EMPTY_BLOBS},
        throwaway=tuple(i for i, t in enumerate(throwaway or []) if t),
    )
