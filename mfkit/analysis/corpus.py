"""Many documents read together: one graph, shared bases, reused blobs, signing keys, tags over time.

Built incrementally: each :class:`Analysis` is reduced to a small :class:`DocSummary`
(picklable, so worker processes can make them) and folded into a :class:`CorpusBuilder`;
nothing else of the document is kept.  Cost is linear in the number of documents.
Pure: no file or network I/O here.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from .document import Analysis
from .layers import EMPTY_BLOBS

__all__ = ["DocSummary", "summarize", "CorpusBuilder", "Corpus", "base_blob"]


@dataclass(frozen=True, slots=True)
class DocSummary:
    """What the corpus keeps of one document.

    Attributes:
        source: input label.
        kind: manifest kind.
        name: repository name (schema 1 payload) or None.
        tag: tag (schema 1 payload) or None.
        reference: the reference asked for, when the capture recorded it.
        digest: registry digest.
        verified: see :attr:`Analysis.verified`.
        signatures: ``(key_id, valid, time)`` per signature.
        entries: ``(v1_id, parent, blob_sum, throwaway, created)``, base first (schema 1).
        blobs: layer digests, base first (every kind with layers).
        base: bottom-most non-empty layer digest (see :func:`base_blob`).
        fetched_at: capture time, when known.
    """

    source: str
    kind: str
    name: str | None
    tag: str | None
    reference: str | None
    digest: str | None
    verified: bool | None
    signatures: tuple[tuple[str | None, bool, str | None], ...]
    entries: tuple[tuple[str | None, str | None, str | None, bool, str | None], ...]
    blobs: tuple[str, ...]
    base: str | None
    fetched_at: str | None

    @property
    def image_tag(self) -> str | None:
        """``name:tag`` from the payload, else the reference's repository and tag, else None."""
        if self.name and self.tag:
            return f"{self.name}:{self.tag}"
        ref = self.reference or ""
        if ref and "@" not in ref and ":" in ref.rsplit("/", 1)[-1]:
            return ref
        return None


def base_blob(blobs_base_first: list[str | None], throwaway: list[bool] | None = None) -> str | None:
    """The bottom-most layer that has content: skip throwaway steps and well-known empty blobs (spec §3.5).

    Grouping by this digest, not by v1 id, because v1 ids depend on the builder (spec §3.6).
    """
    for i, blob in enumerate(blobs_base_first):
        if blob is None or (throwaway and throwaway[i]) or blob in EMPTY_BLOBS:
            continue
        return blob
    return None


def summarize(analysis: Analysis) -> DocSummary:
    """Reduce one analysis to what the corpus needs."""
    a = analysis
    entries: tuple = ()
    blobs: tuple[str, ...] = ()
    base = None
    if a.manifest is not None:
        es = list(reversed(a.manifest.entries))  # spec §3.2: wire index 0 is the top
        entries = tuple((e.id, e.parent or None, e.blob_sum, bool(e.throwaway), e.created) for e in es)
        blobs = tuple(e.blob_sum for e in es if e.blob_sum is not None and not e.throwaway)
        base = base_blob([e.blob_sum for e in es], [bool(e.throwaway) for e in es])
    elif a.kind in ("schema2", "oci-manifest"):
        blobs = tuple(d.digest for d in a.descriptors if d.digest)  # spec §7.1: base first
        base = base_blob(list(blobs))
    m = a.manifest
    return DocSummary(
        source=a.source, kind=a.kind, name=m.name if m else None, tag=m.tag if m else None,
        reference=a.response.reference, digest=a.digest, verified=a.verified,
        signatures=tuple((s.key_id, bool(s.valid), s.time) for s in a.signatures),
        entries=entries, blobs=blobs, base=base, fetched_at=a.response.fetched_at)


@dataclass
class Corpus:
    """The aggregate view.

    Attributes:
        graph: ``networkx.DiGraph`` over every schema 1 document: v1 ids as nodes (attributes
            ``blob_sum``, ``throwaway``, ``created``, ``documents``), edges parent -> child.
        base_groups: ``[{base, members}]``: documents grouped by their bottom-most non-empty blob.
        blobs: digest -> ``{documents, empty}`` (documents = how many documents list it).
        keys: key id -> ``{documents, valid, invalid, repositories, first, last, role}``: ``documents``
            lists the key at all, ``valid`` where its signature verifies, ``invalid`` where it does not;
            ``role`` counts valid documents only: ``single-use`` (one), ``shared`` (several) or
            ``no-valid-signature`` (none: a claimed key proves nothing).
        tags: ``name:tag`` -> ``{captures: [...], digests, changed}``.
        documents: one small record per document.
        unreadable: inputs that could not be read, ``[{source, code, message}]``.
    """

    graph: nx.DiGraph
    base_groups: list[dict[str, Any]]
    blobs: dict[str, dict[str, Any]]
    keys: dict[str, dict[str, Any]]
    tags: dict[str, dict[str, Any]]
    documents: list[dict[str, Any]]
    unreadable: list[dict[str, str]] = field(default_factory=list)

    @property
    def reused_blobs(self) -> dict[str, dict[str, Any]]:
        """Blobs listed by more than one document."""
        return {b: v for b, v in self.blobs.items() if v["documents"] > 1}

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object (sorted, stable)."""
        return {"documents": len(self.documents), "unreadable": self.unreadable,
                "graph": {"nodes": self.graph.number_of_nodes(), "edges": self.graph.number_of_edges(),
                          "roots": sorted(n for n, d in self.graph.in_degree() if d == 0)},
                "base_groups": self.base_groups, "blobs": self.blobs, "keys": self.keys, "tags": self.tags,
                "members": self.documents}

    def to_dataframe(self):  # -> pandas.DataFrame
        """One row per document (needs ``mfkit[notebook]``)."""
        from .frames import dataframe

        cols = ["source", "kind", "image", "digest", "verified", "keys", "base", "layers"]
        return dataframe(self.documents, cols)

    def _repr_html_(self) -> str:
        from ..report_forensic import corpus_html

        return corpus_html(self)


class CorpusBuilder:
    """Fold :class:`DocSummary` records into a :class:`Corpus`, one at a time, in input order."""

    def __init__(self) -> None:
        self.graph = nx.DiGraph()
        self._groups: dict[str, list[str]] = defaultdict(list)
        self._no_base: list[str] = []
        self._blobs: Counter[str] = Counter()
        self._keys: dict[str, dict[str, Any]] = {}
        self._tags: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._docs: list[dict[str, Any]] = []
        self._unreadable: list[dict[str, str]] = []

    def add_unreadable(self, source: str, code: str, message: str) -> None:
        """Record an input that could not be read."""
        self._unreadable.append({"source": source, "code": code, "message": message})

    def add(self, s: DocSummary) -> None:
        """Fold one document in."""
        g = self.graph
        for v1, parent, blob, throwaway, created in s.entries:
            if v1 is None:
                continue
            if v1 in g and not g.nodes[v1].get("missing"):
                node = g.nodes[v1]
                node["documents"] += 1
                if blob is not None and node.get("blob_sum") not in (None, blob):
                    node["conflict"] = True  # one v1 id, two blobs: ids are not content (spec §3.6)
            else:
                attrs = {"documents": 1, "throwaway": throwaway, "missing": False, "conflict": False}
                if blob is not None:
                    attrs["blob_sum"] = blob
                if created is not None:
                    attrs["created"] = created
                g.add_node(v1, **attrs)
            if parent:
                if parent not in g:
                    g.add_node(parent, missing=True, documents=0, throwaway=False, conflict=False)
                g.add_edge(parent, v1)
        for blob in set(s.blobs):
            self._blobs[blob] += 1
        if s.base is not None:
            self._groups[s.base].append(s.source)
        elif s.kind.startswith("schema1") or s.kind in ("schema2", "oci-manifest"):
            self._no_base.append(s.source)
        times = sorted({t for _, _, t in s.signatures if t})
        per_key: dict[str, bool] = {}  # key id -> one of its signatures in this document is valid
        for key_id, valid, _ in s.signatures:
            if key_id is not None:
                per_key[key_id] = per_key.get(key_id, False) or valid
        for key_id, valid in per_key.items():  # counted once per document
            k = self._keys.setdefault(key_id, {"documents": 0, "valid": 0, "invalid": 0, "repositories": set(),
                                               "first": None, "last": None})
            k["documents"] += 1
            k["valid" if valid else "invalid"] += 1
            if s.name:
                k["repositories"].add(s.name)
        for key_id, valid, when in s.signatures:
            if key_id is not None and when:
                k = self._keys[key_id]
                k["first"] = when if k["first"] is None else min(k["first"], when)
                k["last"] = when if k["last"] is None else max(k["last"], when)
        image = s.image_tag
        if image:
            self._tags[image].append({"source": s.source, "digest": s.digest, "signed": times,
                                      "fetched_at": s.fetched_at})
        self._docs.append({"source": s.source, "kind": s.kind, "image": image, "digest": s.digest,
                           "verified": s.verified, "keys": sorted({k for k, _, _ in s.signatures if k}),
                           "base": s.base, "layers": len(s.blobs)})

    def result(self) -> Corpus:
        """The finished :class:`Corpus` (everything sorted)."""
        groups = [{"base": b, "members": sorted(m)} for b, m in sorted(self._groups.items())]
        if self._no_base:
            groups.append({"base": None, "members": sorted(self._no_base)})
        blobs = {b: {"documents": n, "empty": b in EMPTY_BLOBS} for b, n in sorted(self._blobs.items())}
        keys = {}
        for kid, k in sorted(self._keys.items()):
            # One document only: a throwaway (per-push or daemon) key; several: a registry or CI key (spec §1.13).
            # Only valid signatures count: anyone can paste a key id into documents it never signed.
            role = "no-valid-signature" if k["valid"] == 0 else "single-use" if k["valid"] == 1 else "shared"
            keys[kid] = {"documents": k["documents"], "valid": k["valid"], "invalid": k["invalid"],
                         "repositories": sorted(k["repositories"]), "first": k["first"], "last": k["last"],
                         "role": role}
        tags = {}
        for image, caps in sorted(self._tags.items()):
            caps = sorted(caps, key=lambda c: (c["fetched_at"] or "", c["signed"], c["source"]))
            digests = sorted({c["digest"] for c in caps if c["digest"]})
            times = {tuple(c["signed"]) for c in caps} | {c["fetched_at"] for c in caps if c["fetched_at"]}
            tags[image] = {"captures": caps, "digests": digests,
                           "changed": len(digests) > 1,
                           "captured_at_different_times": len(caps) > 1 and len(times) > 1}
        docs = sorted(self._docs, key=lambda d: d["source"])
        return Corpus(self.graph, groups, blobs, keys, tags, docs,
                      sorted(self._unreadable, key=lambda u: (u["source"], u["code"])))
