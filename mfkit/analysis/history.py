"""The ``docker history`` view of one document, and a timeline of its times.

One record format for every manifest kind (spec §7.4): schema 1 rows come from the
v1Compatibility entries, schema 2 / OCI rows from the image config's ``history`` mapped onto
``layers`` (spec §7.3).  Rows are kept newest first, as ``docker history`` prints them.

Pure: the config blob, when there is one, is passed in as bytes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from ..core.findings import SEVERITY_ORDER, Finding
from ..core.jsonstrict import JSONError, loads_strict
from ..core.timefmt import parse_ns as parse_time
from .document import Analysis, sha256_digest
from .layers import EMPTY_BLOBS

__all__ = ["HistoryRow", "History", "TimelineEvent", "build_history", "parse_time", "HISTORY_KINDS"]

HISTORY_KINDS = ("schema1-signed", "schema1-unsigned", "schema2", "oci-manifest", "image-config")
MISSING = "<missing>"  # what docker history shows for a step without an image id

def _http_date(text: str | None) -> int | None:
    if not text:
        return None
    try:
        stamp = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return int(stamp.timestamp()) * 1_000_000_000


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One step of the image, as ``docker history`` lists it.

    Attributes:
        index: step number counted from the base (0 = oldest), as in spec §7.4.
        id: v1 id (schema 1); for schema 2 / OCI the layer digest, or ``<missing>`` for a step
            without a layer, as Docker shows it.
        parent: v1 parent id (schema 1 only).
        created: the ``created`` time as written.
        created_by: the build step as ``docker history --no-trunc`` shows it: ``container_config.Cmd``
            joined with one space for schema 1 (so ``/bin/sh -c #(nop) CMD [...]`` keeps the spacing
            the builder wrote), the config's ``created_by`` string for schema 2.
        created_by_raw: the raw value: the Cmd array (schema 1) or the string (schema 2).
        author: ``author``.
        comment: ``comment``.
        size: schema 1 ``Size`` or the schema 2 layer descriptor size; None when not known.
        empty: no content: throwaway / ``empty_layer``, or a well-known empty blob (spec §3.5).
        empty_layer: the step has no filesystem layer at all (``throwaway`` / ``empty_layer``).
        blob: the layer digest (blobSum for schema 1; None for a schema 2 step without a layer).
        source: ``schema1-v1compat``, ``config-history`` or ``layers-only``.
        wire_index: position in the manifest's own arrays (schema 1 wire order), or None.
    """

    index: int
    id: str
    parent: str | None
    created: str | None
    created_by: str
    created_by_raw: Any
    author: str | None
    comment: str | None
    size: int | None
    empty: bool
    empty_layer: bool
    blob: str | None
    source: str
    wire_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (every attribute)."""
        raw = list(self.created_by_raw) if isinstance(self.created_by_raw, tuple) else self.created_by_raw
        return {"index": self.index, "id": self.id, "parent": self.parent, "created": self.created,
                "created_by": self.created_by, "created_by_raw": raw, "author": self.author,
                "comment": self.comment, "size": self.size, "empty": self.empty, "empty_layer": self.empty_layer,
                "blob": self.blob, "source": self.source, "wire_index": self.wire_index}


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One dated event: an image step created, a signature made, the document fetched."""

    time: str
    event: str
    ns: int = field(repr=False, compare=False, default=0)

    def to_dict(self) -> dict[str, str]:
        """JSON form ``{time, event}``."""
        return {"time": self.time, "event": self.event}


@dataclass(frozen=True, slots=True)
class History:
    """The history of one document.

    Attributes:
        source: the input label.
        kind: the manifest kind.
        digest: the registry digest.
        rows: newest first (``docker history`` order); see :meth:`oldest_first`.
        timeline: dated events, oldest first.
        findings: timeline and mapping anomalies, most severe first.
        config_source: where the schema 2 config came from, when one was used.
    """

    source: str
    kind: str
    digest: str | None
    rows: tuple[HistoryRow, ...]
    timeline: tuple[TimelineEvent, ...] = ()
    findings: tuple[Finding, ...] = ()
    config_source: str | None = None

    def oldest_first(self) -> tuple[HistoryRow, ...]:
        """The rows base first (``--reverse``)."""
        return tuple(reversed(self.rows))

    def to_dict(self, *, reverse: bool = False) -> dict[str, Any]:
        """JSON form: ``{source, kind, digest, order, entries, timeline, findings, config_source}``."""
        rows = self.oldest_first() if reverse else self.rows
        return {"source": self.source, "kind": self.kind, "digest": self.digest,
                "order": "oldest-first" if reverse else "newest-first",
                "entries": [r.to_dict() for r in rows], "timeline": [e.to_dict() for e in self.timeline],
                "findings": [f.to_dict() for f in self.findings], "config_source": self.config_source}

    def to_dataframe(self):  # -> pandas.DataFrame
        """The rows (newest first) as a pandas DataFrame (needs ``mfkit[notebook]``)."""
        from .frames import dataframe

        return dataframe([r.to_dict() for r in self.rows], list(HistoryRow.__slots__))

    def _repr_html_(self) -> str:
        from ..report_forensic import history_html

        return history_html(self)


def build_history(analysis: Analysis, config: bytes | None = None, config_source: str | None = None) -> History:
    """The history of ``analysis``.

    Args:
        analysis: one analyzed document.
        config: the image config blob (schema 2 / OCI) when it is at hand.
        config_source: where ``config`` came from (for the report).

    Returns:
        A :class:`History`; kinds without a history give zero rows.  Never raises on bad content.
    """
    findings: list[Finding] = []
    events: list[TimelineEvent] = []
    rows: list[HistoryRow] = []
    image_created: str | None = None
    if analysis.manifest is not None:
        rows = _schema1_rows(analysis)
        top = analysis.manifest.top
        image_created = top.created if top is not None else None
    elif analysis.kind in ("schema2", "oci-manifest"):
        cfg = None
        if config is not None:
            cfg = _read_config(config, findings)
            want = analysis.config.digest if analysis.config is not None else None
            got = sha256_digest(config)
            if want and got != want:
                findings.append(Finding("history.config-digest-mismatch", "warning",
                                        f"the config used ({got}) is not the blob the manifest names ({want})",
                                        "$.config.digest"))
        elif analysis.config is not None:
            findings.append(Finding("history.config-missing", "info",
                                    f"config blob {analysis.config.digest} not among the inputs: layers only",
                                    "$.config"))
        rows = _schema2_rows(analysis, cfg, findings)
        image_created = cfg.get("created") if isinstance(cfg, dict) and isinstance(cfg.get("created"), str) else None
    elif analysis.kind == "image-config":
        cfg = _read_config(analysis.response.body, findings)
        rows = _schema2_rows(analysis, cfg, findings)
        image_created = cfg.get("created") if isinstance(cfg, dict) and isinstance(cfg.get("created"), str) else None
    _timeline(analysis, rows, image_created, events, findings)
    findings.sort(key=lambda f: (-SEVERITY_ORDER[f.severity], f.code, f.where))
    events.sort(key=lambda e: (e.ns, _RANK.get(e.event.split(" ", 1)[0], 3), e.event))
    return History(analysis.source, analysis.kind, analysis.digest, tuple(reversed(rows)), tuple(events),
                   tuple(findings), config_source if config is not None else None)


def _schema1_rows(analysis: Analysis) -> list[HistoryRow]:
    """Oldest first.  Spec §3.2: wire index 0 is the top, so walk the entries backwards."""
    m = analysis.manifest
    assert m is not None
    kept = set(e.index for e in analysis.chain.kept) if analysis.chain is not None and analysis.chain.kept else None
    rows = []
    for e in reversed(m.entries):
        if kept is not None and e.index not in kept:
            continue  # collapsed as Docker does (spec §3.4 rule 6); the chain finding says so
        empty_layer = bool(e.throwaway)
        rows.append(HistoryRow(
            index=len(rows), id=e.id or MISSING, parent=e.parent or None, created=e.created,
            created_by=e.created_by or "", created_by_raw=e.cmd, author=e.author, comment=e.comment,
            size=e.size, empty=empty_layer or (e.blob_sum in EMPTY_BLOBS), empty_layer=empty_layer,
            blob=e.blob_sum, source="schema1-v1compat", wire_index=e.index))
    return rows


def _read_config(body: bytes, findings: list[Finding]) -> dict | None:
    try:
        doc, _ = loads_strict(body)
    except JSONError as exc:
        findings.append(Finding("history.config-invalid", "error", f"the image config is not JSON: {exc}", "config"))
        return None
    if not isinstance(doc, dict):
        findings.append(Finding("history.config-invalid", "error", "the image config is not a JSON object", "config"))
        return None
    return doc


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _schema2_rows(analysis: Analysis, cfg: dict | None, findings: list[Finding]) -> list[HistoryRow]:
    """Oldest first, mapping config history onto layers with a cursor (spec §7.3)."""
    layers = list(analysis.descriptors) if analysis.kind != "image-config" else []
    hist = cfg.get("history") if isinstance(cfg, dict) else None
    if isinstance(cfg, dict) and not isinstance(hist, list):
        findings.append(Finding("history.config-no-history", "info", "the image config has no history array",
                                "config $.history"))
    items = [h for h in hist if isinstance(h, dict)] if isinstance(hist, list) else []
    non_empty = sum(1 for h in items if h.get("empty_layer") is not True)
    if items and analysis.kind != "image-config" and non_empty != len(layers):
        findings.append(Finding("history.layer-count-mismatch", "warning",
                                f"config history has {non_empty} non-empty steps but the manifest lists "
                                f"{len(layers)} layers: showing layers only", "config $.history"))
        items = []
    rows: list[HistoryRow] = []
    if not items:
        for d in layers:
            rows.append(HistoryRow(len(rows), d.digest or MISSING, None, None, "", None, None, None, d.size,
                                   d.digest in EMPTY_BLOBS, False, d.digest, "layers-only"))
        return rows
    cursor = 0
    for h in items:
        empty_layer = h.get("empty_layer") is True
        desc = None
        if not empty_layer and cursor < len(layers):
            desc = layers[cursor]
            cursor += 1
        blob = desc.digest if desc is not None else None
        created_by = _s(h.get("created_by")) or ""
        rows.append(HistoryRow(
            index=len(rows), id=blob if blob else MISSING, parent=None, created=_s(h.get("created")),
            created_by=created_by, created_by_raw=h.get("created_by"), author=_s(h.get("author")),
            comment=_s(h.get("comment")), size=0 if empty_layer else (desc.size if desc is not None else None),
            empty=empty_layer or blob in EMPTY_BLOBS, empty_layer=empty_layer, blob=blob, source="config-history"))
    return rows


def _timeline(analysis: Analysis, rows: list[HistoryRow], image_created: str | None,
              events: list[TimelineEvent], findings: list[Finding]) -> None:
    """Created, signed, fetched: in that order or it is a finding."""
    newest: tuple[int, str] | None = None
    prev: tuple[int, HistoryRow] | None = None
    for r in rows:  # oldest first
        ns = parse_time(r.created)
        if r.created is not None and ns is None:
            findings.append(Finding("timeline.bad-time", "warning", f"created {r.created!r} is not an RFC 3339 time",
                                    _where(r)))
            continue
        if ns is None:
            continue
        if prev is not None and ns < prev[0]:
            # A child step cannot be older than its parent (spec §3.3 parent = next-older entry).
            findings.append(Finding("timeline.created-backwards", "warning",
                                    f"step {r.index} was created {r.created}, before its parent step "
                                    f"{prev[1].index} ({prev[1].created})", _where(r)))
        prev = (ns, r)
        if newest is None or ns >= newest[0]:
            newest = (ns, r.created or "")
    if image_created and parse_time(image_created) is not None:
        ns = parse_time(image_created)
        assert ns is not None
        if newest is None or ns > newest[0]:
            newest = (ns, image_created)
    if rows:
        first = next((r for r in rows if parse_time(r.created) is not None), None)
        if first is not None:
            events.append(TimelineEvent(first.created or "", "base step created", parse_time(first.created) or 0))
    if newest is not None:
        events.append(TimelineEvent(newest[1], "image created (newest step)", newest[0]))
    sig_times: list[tuple[int, str, str]] = []
    for s in analysis.signatures:
        label = f"signature {s.index} ({s.key_id or s.jwk_kid or 'unknown key'}{'' if s.valid else ', INVALID'})"
        ns = parse_time(s.time)
        if s.time is not None and ns is None:
            findings.append(Finding("timeline.bad-time", "warning", f"{label} time {s.time!r} is not an RFC 3339 time",
                                    f"signatures[{s.index}].protected.time"))
        if ns is None:
            continue
        events.append(TimelineEvent(s.time or "", label + " made", ns))
        sig_times.append((ns, s.time or "", label))
        if newest is not None and ns < newest[0]:
            findings.append(Finding("timeline.signed-before-created", "warning",
                                    f"{label} is dated {s.time}, before the image was created ({newest[1]})",
                                    f"signatures[{s.index}].protected.time"))
    fetched, how = _fetch_time(analysis)
    if fetched is not None:
        events.append(TimelineEvent(fetched[1], f"fetched ({how})", fetched[0]))
        for ns, text, label in sig_times:
            if fetched[0] < ns:
                findings.append(Finding("timeline.fetched-before-signed", "warning",
                                        f"fetched at {fetched[1]} ({how}) but {label} is dated {text}", how))
        if newest is not None and fetched[0] < newest[0]:
            findings.append(Finding("timeline.fetched-before-created", "warning",
                                    f"fetched at {fetched[1]} ({how}) but the image was created {newest[1]}", how))


# Ties keep the causal order: built, then signed, then fetched.
_RANK = {"base": 0, "image": 0, "signature": 1, "fetched": 2}


def _where(r: HistoryRow) -> str:
    return f"$.history[{r.wire_index}]" if r.wire_index is not None else f"config $.history[{r.index}]"


def _fetch_time(analysis: Analysis) -> tuple[tuple[int, str] | None, str]:
    resp = analysis.response
    ns = parse_time(resp.fetched_at)
    if ns is not None and resp.fetched_at:
        return (ns, resp.fetched_at), "capture time"
    date = resp.header("date")
    ns = _http_date(date)
    if ns is not None and date:
        return (ns, date), "HTTP Date header"
    return None, ""
