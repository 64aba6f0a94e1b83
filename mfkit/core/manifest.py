"""Manifest kinds and the schema 1 model, read from the signed payload only (spec §2.1, §3).

Index 0 of ``fsLayers``/``history`` is the top (newest) layer on the wire; the model keeps
that wire order and says so, the history view reverses it where it needs oldest first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .findings import Finding
from .jsonstrict import JSONError, go_fold, json_path, loads_strict

__all__ = [
    "KINDS",
    "MEDIA_TYPES",
    "HistoryEntry",
    "Schema1Manifest",
    "Descriptor",
    "detect_kind",
    "parse_schema1",
    "parse_descriptors",
    "valid_digest",
    "fold_findings",
]

SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA1_JSON = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

MEDIA_TYPES = {
    SCHEMA1_SIGNED: "schema1-signed",
    SCHEMA1_JSON: "schema1-unsigned",
    SCHEMA2: "schema2",
    LIST: "manifest-list",
    OCI_MANIFEST: "oci-manifest",
    OCI_INDEX: "oci-index",
}
KINDS = ("schema1-signed", "schema1-unsigned", "schema2", "oci-manifest", "manifest-list", "oci-index",
         "image-config", "token-response", "tag-list", "catalog", "registry-error", "redirect", "no-content",
         "unknown")

_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_SHA256 = re.compile(r"sha256:[a-f0-9]{64}")
_V1_ID = re.compile(r"[a-f0-9]{64}")
_SCHEMA1_SNIFF = re.compile(rb'"schemaVersion"\s*:\s*1\b')

_TOP_FIELDS = ("schemaVersion", "mediaType", "name", "tag", "architecture", "fsLayers", "history", "signatures")
_V1_FIELDS = ("id", "parent", "created", "container", "container_config", "config", "author", "comment",
              "docker_version", "architecture", "variant", "os", "Size", "throwaway", "checksum")
_AMBIGUOUS = ("config", "layers", "manifests")
_V1_SET = frozenset(_V1_FIELDS)
_V1_TYPES = (("id", str, "a string"), ("parent", str, "a string"), ("created", str, "a string"),
             ("author", str, "a string"), ("throwaway", bool, "a boolean"), ("Size", int, "an integer"))


def valid_digest(text: Any) -> bool:
    """True for ``algorithm:hex``; sha256 must be 64 lower-case hex (OCI digest rule)."""
    if not isinstance(text, str) or not _DIGEST.fullmatch(text):
        return False
    return not text.startswith("sha256:") or bool(_SHA256.fullmatch(text))


@dataclass(slots=True, eq=False)
class HistoryEntry:
    """One ``history[i].v1Compatibility`` with its ``fsLayers[i].blobSum`` (wire index ``index``).

    Read-only by convention (not frozen: thousands are built per second in corpus runs).

    ``created_by`` is ``container_config.Cmd`` joined with one space, as Docker shows it;
    ``cmd`` keeps the raw array.  ``data`` is the whole parsed v1Compatibility object.
    """

    index: int
    blob_sum: str | None
    id: str | None = None
    parent: str | None = None
    created: str | None = None
    created_by: str | None = None
    cmd: tuple[str, ...] | None = None
    author: str | None = None
    comment: str | None = None
    throwaway: bool | None = None
    size: int | None = None
    error: str | None = None
    data: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Schema1Manifest:
    """A schema 1 manifest parsed from its payload (wire order: index 0 = top)."""

    schema_version: Any
    name: str | None
    tag: str | None
    architecture: str | None
    entries: tuple[HistoryEntry, ...]
    fs_layers_count: int
    history_count: int
    extra: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def blob_sums(self) -> list[str | None]:
        """blobSums in wire order (top first)."""
        return [e.blob_sum for e in self.entries]

    @property
    def top(self) -> HistoryEntry | None:
        """The newest entry, whose v1Compatibility is the full image config."""
        return self.entries[0] if self.entries else None


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content descriptor of a schema 2 / OCI manifest or index."""

    media_type: str | None
    digest: str | None
    size: int | None
    platform: str | None = None
    urls: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {"media_type": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            out["platform"] = self.platform
        if self.urls:
            out["urls"] = list(self.urls)
        return out


def detect_kind(content_type: str | None, body: bytes, parsed: Any) -> tuple[str, str]:
    """Decide the kind of a body; Content-Type first, then the shape (spec §6.4).

    Returns:
        ``(kind, how)`` where ``how`` is ``content-type``, ``media-type``, ``shape`` or ``sniff``.
    """
    if content_type in MEDIA_TYPES:
        kind = MEDIA_TYPES[content_type]
        # A signed Content-Type on a body without signatures is still read by its shape.
        if kind.startswith("schema1") and isinstance(parsed, dict):
            return ("schema1-signed" if "signatures" in parsed else "schema1-unsigned"), "content-type"
        return kind, "content-type"
    if content_type == DOCKER_CONFIG or content_type == "application/vnd.oci.image.config.v1+json":
        return "image-config", "content-type"
    if not isinstance(parsed, dict):
        if parsed is None and _SCHEMA1_SNIFF.search(body[:4096]) and b'"signatures"' in body:
            return "schema1-signed", "sniff"
        return "unknown", "shape"
    mt = parsed.get("mediaType")
    if isinstance(mt, str) and mt in MEDIA_TYPES:
        return MEDIA_TYPES[mt], "media-type"
    sv = parsed.get("schemaVersion")
    # fsLayers/history with signatures is a signed schema 1 document whatever schemaVersion says
    # (moby bad_manifest edits it to 2); the schemaVersion finding then reports the edit.
    if "signatures" in parsed and ("fsLayers" in parsed or "history" in parsed):
        return "schema1-signed", "shape"
    if ("fsLayers" in parsed or "history" in parsed) and not ({"layers", "manifests", "config", "rootfs"} & parsed.keys()):
        return "schema1-unsigned", "shape"  # schemaVersion wrong or missing: reported by the parser
    if sv == 1 and not isinstance(sv, bool):
        return ("schema1-signed" if "signatures" in parsed else "schema1-unsigned"), "shape"
    if sv == 2 and not isinstance(sv, bool):
        if "manifests" in parsed:
            return "oci-index", "shape"
        cfg = parsed.get("config")
        if isinstance(cfg, dict) and cfg.get("mediaType") == DOCKER_CONFIG:
            return "schema2", "shape"
        return "oci-manifest", "shape"
    if "token" in parsed or "access_token" in parsed:
        return "token-response", "shape"
    if "tags" in parsed and "name" in parsed:
        return "tag-list", "shape"
    if "repositories" in parsed:
        return "catalog", "shape"
    if isinstance(parsed.get("errors"), list):
        return "registry-error", "shape"
    if "rootfs" in parsed or ("config" in parsed and "architecture" in parsed and "os" in parsed):
        return "image-config", "shape"
    return "unknown", "shape"


_FOLDED: dict[tuple[str, ...], tuple[frozenset[str], dict[str, str]]] = {}


def fold_findings(obj: dict, known: tuple[str, ...], path: str) -> list[Finding]:
    """Keys that Go would match to a known field although they are spelled differently (spec §2.3).

    Go assigns the field from every matching key in document order, so the last one wins.
    When that is not the literal key mfkit reads, Docker's view of the document differs
    from the one shown here: that is an error, and the message says what Docker would see.
    """
    out = []
    if known not in _FOLDED:
        _FOLDED[known] = (frozenset(known), {go_fold(k): k for k in known})
    exact, folded = _FOLDED[known]
    for key in obj:
        if key in exact:
            continue
        target = folded.get(go_fold(key))
        if not target:
            continue
        matching = [k for k in obj if go_fold(k) == go_fold(target)]
        winner = matching[-1]
        if winner == target:
            out.append(Finding("json.case-fold-key", "warning",
                               f"key {key!r} also matches {target!r} in Go's decoder; the literal {target!r} comes "
                               "later and wins there too", f"{path}.{key}"))
            continue
        value = obj[winner]
        seen = f"{len(value)} entries" if isinstance(value, list) else f"{type(value).__name__} {str(value)[:40]!r}"
        mine = obj.get(target)
        shown = (f"{len(mine)} entries" if isinstance(mine, list) else "nothing") if target in obj else "nothing"
        out.append(Finding("json.case-fold-key", "error",
                           f"Docker's decoder reads {target!r} from the key {winner!r} ({seen}); the literal view "
                           f"shown here has {shown}: the two readings differ", f"{path}.{key}"))
    return out


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _entry(i: int, blob: Any, hist: Any, findings: list[Finding]) -> HistoryEntry:
    # Go also matches "BlobSum" / "V1COMPATIBILITY" here (spec §2.3): say so when it happens.
    if isinstance(blob, dict) and blob.keys() != {"blobSum"}:
        findings.extend(fold_findings(blob, ("blobSum",), f"$.fsLayers[{i}]"))
    if isinstance(hist, dict) and hist.keys() != {"v1Compatibility"}:
        findings.extend(fold_findings(hist, ("v1Compatibility",), f"$.history[{i}]"))
    blob_sum = _str(blob.get("blobSum")) if isinstance(blob, dict) else None
    if blob is not None and not valid_digest(blob_sum):
        findings.append(Finding("manifest.invalid-blobsum", "error",
                                f"blobSum {blob_sum!r} is not a valid digest", json_path("fsLayers", i, "blobSum")))
    where = f"$.history[{i}].v1Compatibility"
    raw = hist.get("v1Compatibility") if isinstance(hist, dict) else None
    if not isinstance(raw, str):
        findings.append(Finding("manifest.v1compat-type", "error",
                                "v1Compatibility is missing or not a string (Docker refuses the manifest)", where))
        return HistoryEntry(i, blob_sum, error="v1Compatibility missing or not a string")
    try:
        data, anomalies = loads_strict(raw)
    except JSONError as exc:
        findings.append(Finding("manifest.v1compat-invalid", "error", f"v1Compatibility is not JSON: {exc}", where))
        return HistoryEntry(i, blob_sum, error=str(exc))
    for kind, detail in anomalies:
        findings.append(Finding(f"json.{kind}", "warning", f"{kind} inside v1Compatibility: {detail}", where))
    if not isinstance(data, dict):
        return HistoryEntry(i, blob_sum, error="v1Compatibility is not an object")
    if not data.keys() <= _V1_SET:
        findings.extend(fold_findings(data, _V1_FIELDS, where))
    for key, want, label in _V1_TYPES:
        if key in data and data[key] is not None and not isinstance(data[key], want):
            findings.append(Finding("manifest.v1compat-field-type", "warning",
                                    f"{key} is {type(data[key]).__name__}, not {label}", f"{where}.{key}"))
    cc = data.get("container_config")
    cmd = cc.get("Cmd") if isinstance(cc, dict) else None
    cmd_t = tuple(c for c in cmd if isinstance(c, str)) if isinstance(cmd, list) else None
    thr = data.get("throwaway")
    size = data.get("Size")
    return HistoryEntry(
        index=i,
        blob_sum=blob_sum,
        id=_str(data.get("id")),
        parent=_str(data.get("parent")),
        created=_str(data.get("created")),
        created_by=" ".join(cmd_t) if cmd_t is not None else None,
        cmd=cmd_t,
        author=_str(data.get("author")),
        comment=_str(data.get("comment")),
        throwaway=thr if isinstance(thr, bool) else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        data=data,
    )


def parse_schema1(doc: Any) -> tuple[Schema1Manifest | None, list[Finding]]:
    """Read a schema 1 manifest object (the payload of a signed one).  Never raises."""
    findings: list[Finding] = []
    if not isinstance(doc, dict):
        findings.append(Finding("manifest.not-object", "error", "the manifest is not a JSON object", "$"))
        return None, findings
    findings.extend(fold_findings(doc, _TOP_FIELDS, "$"))
    sv = doc.get("schemaVersion")
    if sv != 1 or isinstance(sv, bool) or isinstance(sv, float):
        findings.append(Finding("manifest.schema-version", "error", f"schemaVersion is {sv!r}, not the integer 1",
                                "$.schemaVersion"))
    # CVE-2021-41190 family: a schema 1 document must not also read as another kind (spec §2.4).
    for key in doc:
        if go_fold(key) in _AMBIGUOUS:
            findings.append(Finding("manifest.ambiguous", "error",
                                    f"schema 1 document also carries {key!r}: other clients may read it as another kind",
                                    f"$.{key}"))
    if "mediaType" in doc:
        findings.append(Finding("manifest.media-type-member", "info",
                                f"schema 1 document carries mediaType {doc.get('mediaType')!r} (not part of schema 1)",
                                "$.mediaType"))
    fs = doc.get("fsLayers")
    hist = doc.get("history")
    if not isinstance(fs, list):
        findings.append(Finding("manifest.fslayers-type", "error", "fsLayers is missing or not an array", "$.fsLayers"))
        fs = []
    if not isinstance(hist, list):
        findings.append(Finding("manifest.history-type", "error", "history is missing or not an array", "$.history"))
        hist = []
    n = max(len(fs), len(hist))
    entries = tuple(_entry(i, fs[i] if i < len(fs) else None, hist[i] if i < len(hist) else None, findings)
                    for i in range(n))
    known = set(_TOP_FIELDS)
    return Schema1Manifest(
        schema_version=sv,
        name=_str(doc.get("name")),
        tag=_str(doc.get("tag")),
        architecture=_str(doc.get("architecture")),
        entries=entries,
        fs_layers_count=len(fs),
        history_count=len(hist),
        extra={k: v for k, v in doc.items() if k not in known},
    ), findings


def _descriptor(d: Any) -> Descriptor:
    if not isinstance(d, dict):
        return Descriptor(None, None, None)
    plat = d.get("platform")
    platform = None
    if isinstance(plat, dict):
        platform = "/".join(str(plat[k]) for k in ("os", "architecture", "variant") if isinstance(plat.get(k), str))
    urls = d.get("urls")
    size = d.get("size")
    return Descriptor(_str(d.get("mediaType")), _str(d.get("digest")),
                      size if isinstance(size, int) and not isinstance(size, bool) else None, platform,
                      tuple(u for u in urls if isinstance(u, str)) if isinstance(urls, list) else ())


def parse_descriptors(doc: Any, kind: str) -> tuple[Descriptor | None, list[Descriptor], list[Finding]]:
    """Config and layers of a schema 2 / OCI manifest, or the children of an index.  Never raises."""
    findings: list[Finding] = []
    if not isinstance(doc, dict):
        return None, [], [Finding("manifest.not-object", "error", "the manifest is not a JSON object", "$")]
    key = "manifests" if kind in ("manifest-list", "oci-index") else "layers"
    items = doc.get(key)
    if not isinstance(items, list):
        findings.append(Finding(f"manifest.{key}-type", "error", f"{key} is missing or not an array", f"$.{key}"))
        items = []
    descs = [_descriptor(d) for d in items]
    for i, d in enumerate(descs):
        if not valid_digest(d.digest):
            findings.append(Finding("manifest.invalid-digest", "error", f"digest {d.digest!r} is not valid",
                                    json_path(key, i, "digest")))
        if d.urls:
            findings.append(Finding("manifest.foreign-urls", "warning",
                                    "descriptor lists external URLs: never fetch them with registry credentials (CVE-2020-15157)",
                                    json_path(key, i, "urls")))
    config = _descriptor(doc.get("config")) if key == "layers" else None
    # A manifest must not also read as an index, and the reverse (CVE-2021-41190).
    other = "manifests" if key == "layers" else "layers"
    if other in doc:
        findings.append(Finding("manifest.ambiguous", "error",
                                f"document carries both {key!r} and {other!r}", f"$.{other}"))
    return config, descs, findings
