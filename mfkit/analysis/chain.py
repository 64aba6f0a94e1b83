"""The v1 parent chain as a networkx graph, rebuilt with Docker's rules and reported, not enforced.

Rules (spec §3.4, moby ``verifySchema1Manifest`` + ``fixManifestLayers``), each a finding:
  (2) fsLayers and history have the same, non-zero length;
  (3) every id is 64 lower-case hex (CVE-2014-9358 is why);
  (4) the base entry has no parent (Windows base layers excepted);
  (5) an id seen earlier that is not the immediately preceding id is a duplicate;
  (6) consecutive equal ids collapse into one; otherwise parent[i] must equal id[i+1].
Nodes are v1 ids (never blobSums, which repeat); edges run parent -> child.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx as nx

from ..core.findings import Finding
from ..core.jsonstrict import json_path
from ..core.manifest import HistoryEntry

__all__ = ["ChainResult", "build_chain"]

_V1_ID = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True, slots=True)
class ChainResult:
    """The rebuilt chain.

    Attributes:
        order: ids from top to base after Docker's collapse of consecutive duplicates.
        collapsed: wire indexes removed as consecutive duplicates.
        findings: chain anomalies.
        graph: ``networkx.DiGraph`` of v1 ids, parent -> child, with node attributes
            ``blob_sum, created, created_by, author, throwaway, index`` (built on first use).
    """

    order: tuple[str, ...]
    collapsed: tuple[int, ...]
    findings: tuple[Finding, ...] = ()
    kept: tuple[HistoryEntry, ...] = field(default=(), repr=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def graph(self) -> nx.DiGraph:
        """The chain as a ``networkx.DiGraph`` (parent -> child)."""
        if "g" not in self._cache:
            self._cache["g"] = _graph(self.kept)
        return self._cache["g"]

    @property
    def ok(self) -> bool:
        """No error-level chain finding."""
        return not any(f.severity == "error" for f in self.findings)

    @property
    def top(self) -> str | None:
        """The newest id."""
        return self.order[0] if self.order else None

    @property
    def base(self) -> str | None:
        """The oldest id."""
        return self.order[-1] if self.order else None

    def to_dict(self) -> dict:
        """JSON form ``{ok, top, base, length, order, collapsed}``."""
        return {"ok": self.ok, "top": self.top, "base": self.base, "length": len(self.order),
                "order": list(self.order), "collapsed": list(self.collapsed)}


def build_chain(entries: tuple[HistoryEntry, ...], fs_count: int, history_count: int,
                os_name: str | None = None) -> ChainResult:
    """Rebuild the chain of one schema 1 manifest.  Never raises on bad data."""
    findings: list[Finding] = []
    if fs_count != history_count:  # (2)
        findings.append(Finding("chain.count-mismatch", "error",
                                f"fsLayers has {fs_count} entries but history has {history_count}", "$.history"))
    if not entries:
        findings.append(Finding("chain.empty", "error", "the manifest has zero layers", "$.fsLayers"))
        return ChainResult((), (), tuple(findings))
    ids = [e.id for e in entries]
    for e in entries:  # (3)
        if e.error is None and (e.id is None or not _V1_ID.fullmatch(e.id)):
            findings.append(Finding("chain.invalid-id", "error", f"id {e.id!r} is not 64 lower-case hex characters",
                                    json_path("history", e.index, "v1Compatibility") + ".id"))
    seen: set[str] = set()
    dup = False
    for i, v1 in enumerate(ids):  # (5)
        if v1 is None:
            continue
        if v1 in seen and v1 != ids[i - 1]:
            dup = True
            findings.append(Finding("chain.duplicate-id", "error",
                                    f"id {v1[:12]} appears again at index {i}, not next to its earlier occurrence",
                                    json_path("history", i, "v1Compatibility") + ".id"))
        seen.add(v1)
    collapsed: list[int] = []
    broken = False
    for i in range(len(entries) - 2, -1, -1):  # (6)
        if ids[i] is not None and ids[i] == ids[i + 1]:
            collapsed.append(i)
            findings.append(Finding("chain.consecutive-duplicate", "warning",
                                    f"entries {i} and {i + 1} share id {ids[i][:12]}; collapsed as Docker does",
                                    json_path("history", i)))
        elif entries[i].parent != ids[i + 1]:
            broken = True
            findings.append(Finding("chain.broken-parent", "error",
                                    f"entry {i} names parent {str(entries[i].parent)[:12]} but the next entry is {str(ids[i + 1])[:12]}",
                                    json_path("history", i, "v1Compatibility") + ".parent"))
    gone = set(collapsed)
    kept = [e for e in entries if e.index not in gone]
    base = kept[-1]
    if base.parent:  # (4)
        windows = (os_name or "").lower() == "windows"
        findings.append(Finding("chain.base-has-parent", "info" if windows else "error",
                                f"the base entry names parent {base.parent[:12]}"
                                + (" (allowed for Windows foreign base layers)" if windows else ""),
                                json_path("history", base.index, "v1Compatibility") + ".parent"))
    result_cache: dict = {}
    if dup or broken or base.parent:  # only then can the links loop
        import networkx as nx  # imported on first use: plain analysis never needs it

        graph = result_cache["g"] = _graph(tuple(kept))
        if not nx.is_directed_acyclic_graph(graph):
            cycle = nx.find_cycle(graph)
            findings.append(Finding("chain.cycle", "error",
                                    "the parent links form a cycle: " + " -> ".join(a[:12] for a, _ in cycle),
                                    "$.history"))
    order = tuple(e.id for e in kept if e.id is not None)
    return ChainResult(order, tuple(sorted(collapsed)), tuple(findings), tuple(kept), result_cache)


def _graph(kept: tuple[HistoryEntry, ...]) -> nx.DiGraph:
    import networkx as nx

    graph = nx.DiGraph()
    for e in reversed(kept):
        if e.id is None:
            continue
        if e.id not in graph or graph.nodes[e.id].get("missing"):
            graph.add_node(e.id, blob_sum=e.blob_sum, created=e.created, created_by=e.created_by,
                           author=e.author, throwaway=bool(e.throwaway), index=e.index, missing=False)
        if e.parent:
            if e.parent not in graph:
                graph.add_node(e.parent, missing=True)
            graph.add_edge(e.parent, e.id)
    return graph
