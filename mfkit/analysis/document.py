"""One analyzed document: raw bytes, signed payload and parsed model side by side.

``analyze(response)`` is the whole offline job for one input.  It never raises on bad
content: malformed bytes become error findings, a bad signature is a verdict.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from ..core.auth import decode_grant
from ..core.findings import SEVERITY_ORDER, Finding
from ..core.http import Response
from ..core.jsonstrict import JSONError, loads_strict
from ..core.jws import Envelope, open_envelope, open_envelope_fast
from ..core.manifest import Descriptor, Schema1Manifest, detect_kind, parse_descriptors, parse_schema1
from ..core.timefmt import parse_datetime as _parse_time
from ..core.trust import TrustDecision, TrustPolicy, decide
from .chain import ChainResult, build_chain
from .layers import LayerStats, layer_stats

__all__ = ["Analysis", "Digests", "analyze", "sha256_digest"]


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Digests:
    """The three digests of spec §4 and which one the registry's header matches.

    Attributes:
        body: sha256 of the exact bytes saved.
        payload: sha256 of the signed payload (signed schema 1 only).
        header: the ``Docker-Content-Digest`` that came with it, if any.
        registry: what a registry calls this document: payload digest for signed schema 1,
            body digest otherwise.
    """

    body: str
    payload: str | None
    header: str | None
    registry: str | None

    @property
    def header_matches(self) -> str | None:
        """``payload``, ``body``, ``neither``, or None when there is no header."""
        if self.header is None:
            return None
        if self.payload is not None and self.header == self.payload:
            return "payload"
        if self.header == self.body:
            return "body"
        return "neither"

    def to_dict(self) -> dict[str, Any]:
        """JSON form ``{body, payload, header, header_matches}``."""
        return {"body": self.body, "payload": self.payload, "header": self.header,
                "header_matches": self.header_matches}


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything mfkit established about one document.

    Attributes:
        response: the input as saved (raw bytes and headers).
        kind: one of :data:`mfkit.core.manifest.KINDS`.
        kind_from: how the kind was decided (content-type, media-type, shape, sniff).
        digests: see :class:`Digests`.
        payload: the signed payload bytes (signed schema 1), else None.
        envelope: signatures and payload reconstruction (signed schema 1), else None.
        manifest: the schema 1 model, parsed from the payload only, else None.
        chain: the rebuilt parent chain (schema 1), else None.
        layers: blob dedupe, else None.
        config: config descriptor (schema 2 / OCI).
        descriptors: layers (schema 2 / OCI) or child manifests (lists / indexes).
        findings: every observation, most severe first.
    """

    response: Response
    kind: str
    kind_from: str
    digests: Digests
    payload: bytes | None = None
    envelope: Envelope | None = None
    manifest: Schema1Manifest | None = None
    chain: ChainResult | None = None
    layers: LayerStats | None = None
    config: Descriptor | None = None
    descriptors: tuple[Descriptor, ...] = ()
    findings: tuple[Finding, ...] = field(default=())
    trust: tuple[TrustDecision, ...] = ()
    policy_given: bool = False
    grant: dict | None = None

    @property
    def source(self) -> str:
        """Where the input came from."""
        return self.response.source

    @property
    def digest(self) -> str | None:
        """The registry digest (payload digest for signed schema 1, body digest otherwise)."""
        return self.digests.registry

    @property
    def signed(self) -> bool:
        """A signed schema 1 document (even one whose signatures cannot be read)."""
        return self.kind == "schema1-signed"

    @property
    def verified(self) -> bool | None:
        """True: signed and every signature valid; False: signed but not; None: unsigned or not schema 1."""
        if not self.signed:
            return None
        return bool(self.envelope and self.envelope.verified)

    @property
    def trusted(self) -> bool | None:
        """True: signed, every signature valid and trusted; False: a policy was given and it is not;
        None: no trust input, or nothing signed to trust.  Validity alone never makes it True."""
        if not self.signed or not self.policy_given:
            return None
        return bool(self.trust) and self.verified is True and all(t.status == "trusted" for t in self.trust)

    @property
    def is_manifest(self) -> bool:
        """A manifest kind (not a token answer, tag list, catalog, error or config)."""
        return self.kind in ("schema1-signed", "schema1-unsigned", "schema2", "oci-manifest", "manifest-list",
                             "oci-index", "unknown")

    def _repr_html_(self) -> str:
        from ..notebook import analysis_html

        return analysis_html(self)

    @property
    def ok(self) -> bool:
        """No failed verification and no error-level finding (exit code 0)."""
        return self.verified is not False and not any(f.severity == "error" for f in self.findings)

    @property
    def signatures(self) -> tuple:
        """Per-signature results (empty when unsigned)."""
        return self.envelope.signatures if self.envelope else ()

    def _sig_dict(self, i: int, sig: Any) -> dict[str, Any]:
        out = sig.to_dict()
        decision = self.trust[i] if i < len(self.trust) else None
        out["trust"] = decision.status if decision else "unknown"
        out["trust_reason"] = decision.reason if decision else None
        if decision and decision.chain:
            out["chain_checks"] = [c.to_dict() for c in decision.chain]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object: stable keys, no secrets, no bytes."""
        m = self.manifest
        out: dict[str, Any] = {
            "source": self.source,
            "kind": self.kind,
            "kind_from": self.kind_from,
            "content_type": self.response.content_type,
            "status": self.response.status,
            "size": len(self.response.body),
            "digest": self.digests.registry,
            "digests": self.digests.to_dict(),
            "signatures": [self._sig_dict(i, s) for i, s in enumerate(self.signatures)],
            "verified": self.verified,
            "trusted": self.trusted,
            "layers": self.layers.to_dict() if self.layers else None,
            "chain": self.chain.to_dict() if self.chain else None,
            "findings": [f.to_dict() for f in self.findings],
        }
        if self.envelope is not None:
            env = self.envelope
            out["format"] = {"length": env.format_length,
                             "tail": env.format_tail.decode("latin-1") if env.format_tail is not None else None,
                             "payload_size": len(env.payload) if env.payload is not None else None}
        if m is not None:
            out.update(name=m.name, tag=m.tag, architecture=m.architecture)
        if self.config is not None:
            out["config"] = self.config.to_dict()
        if self.descriptors:
            key = "manifests" if self.kind in ("manifest-list", "oci-index") else "blobs"
            out[key] = [d.to_dict() for d in self.descriptors]
        grant = self.grant or self.response.grant
        if grant:
            out["grant"] = grant
        if self.response.url:
            out["url"] = self.response.url
        if self.response.reference:
            out["reference"] = self.response.reference
        return out


_CAPTURE_KINDS = {"token": "token-response", "tags": "tag-list", "catalog": "catalog"}
_SCHEMA1_OR_UNKNOWN = {None, "application/vnd.docker.distribution.manifest.v1+prettyjws",
                       "application/vnd.docker.distribution.manifest.v1+json", "application/json", "text/plain",
                       "application/octet-stream"}


def _fast_signed(response: Response) -> tuple[Envelope, Any, list] | None:
    """A signed schema 1 document in libtrust's own layout: skip parsing the whole document."""
    raw = response.body
    if response.content_type not in _SCHEMA1_OR_UNKNOWN or b'"signatures"' not in raw[-65536:]:
        return None
    env = open_envelope_fast(raw)
    if env is None:
        return None
    try:
        doc, anomalies = loads_strict(env.payload)  # type: ignore[arg-type]
    except JSONError:
        return None
    if not isinstance(doc, dict) or not doc or not ("fsLayers" in doc or "history" in doc or doc.get("schemaVersion") == 1):
        return None
    return env, doc, anomalies


def analyze(response: Response, *, policy: TrustPolicy | None = None, now: dt.datetime | None = None) -> Analysis:
    """Analyze one saved response.  Never raises on bad content.

    Args:
        response: the saved bytes and headers.
        policy: what the user trusts; None or empty trusts nothing.
        now: the reference time for "in the future" and chain checks (the caller reads the
            clock once); the fetch time of the response wins when it is known.
    """
    ctx = (policy or TrustPolicy(), now)
    raw = response.body
    findings: list[Finding] = []
    header = response.header("docker-content-digest")
    body_digest = sha256_digest(raw)
    fast = _fast_signed(response) if response.status is None or response.status < 400 else None
    if fast is not None:
        return _finish(response, "schema1-signed", "content-type" if response.content_type else "shape",
                       body_digest, header, fast[0], fast[1], fast[2], findings, ctx)
    if response.status is not None and (300 <= response.status < 400 or response.status in (204, 304)) \
            and not raw.strip():
        # A redirect or "no content" answer carries no document (curl -iL shows them in passing).
        kind = "redirect" if 300 <= response.status < 400 and response.status != 304 else "no-content"
        _framing_findings(response, findings)
        return _finish(response, kind, "status", body_digest, header, None, None, [], findings, ctx)
    try:
        parsed, anomalies = loads_strict(raw)
    except JSONError as exc:
        parsed, anomalies = None, []
        where = f"byte {exc.offset}" if exc.offset is not None else ""
        findings.append(Finding(exc.code, "error", f"not valid JSON: {exc}", where))
    kind, how = detect_kind(response.content_type, raw, parsed)
    saved_as = _CAPTURE_KINDS.get(str(response.meta.get("kind")))
    if saved_as and kind == "unknown":  # e.g. a token answer saved with its secrets removed
        kind, how = saved_as, "capture"
    if response.status is not None and response.status >= 400:
        kind = "registry-error"
    if kind == "unknown" and not findings:
        findings.append(Finding("document.unknown-kind", "warning",
                                "valid JSON, but not a manifest, index, config or registry answer mfkit knows", "$"))
    _framing_findings(response, findings)
    _json_findings(anomalies, "outer document" if kind == "schema1-signed" else "document", findings)
    if kind == "schema1-signed" and isinstance(parsed, dict) and "signatures" not in parsed:
        kind = "schema1-unsigned"
    env = None
    doc: Any = parsed
    p_anomalies: list = []
    if kind == "schema1-signed":
        doc = None
        if isinstance(parsed, dict):
            env = open_envelope(raw, parsed)
            if env.payload is not None:
                try:
                    doc, p_anomalies = loads_strict(env.payload)
                    _compare_outer(parsed, doc, findings)
                except JSONError as exc:
                    findings.append(Finding("jws.payload-invalid", "error", f"the signed payload is not JSON: {exc}",
                                            f"payload byte {exc.offset}"))
    return _finish(response, kind, how, body_digest, header, env, doc, p_anomalies, findings, ctx)


def _finish(response: Response, kind: str, how: str, body_digest: str, header: str | None, env: Envelope | None,
            doc: Any, p_anomalies: list, findings: list[Finding], ctx: tuple) -> Analysis:
    manifest = chain = layers = config = None
    descriptors: tuple[Descriptor, ...] = ()
    payload = env.payload if env is not None else None
    payload_digest = sha256_digest(payload) if payload is not None else None
    if env is not None:
        findings.extend(env.findings)
        _json_findings(p_anomalies, "signed payload", findings)
    parsed = doc
    if kind.startswith("schema1") and doc is not None:
        manifest, mf = parse_schema1(doc)
        findings.extend(mf)
        if manifest is not None:
            top = manifest.top
            os_name = top.data.get("os") if top is not None else None
            chain = build_chain(manifest.entries, manifest.fs_layers_count, manifest.history_count,
                                os_name if isinstance(os_name, str) else None)
            findings.extend(chain.findings)
            layers = layer_stats(manifest.blob_sums, [e.throwaway for e in manifest.entries])
    elif kind in ("schema2", "oci-manifest", "manifest-list", "oci-index"):
        config, descs, df = parse_descriptors(parsed, kind)
        descriptors = tuple(descs)
        findings.extend(df)
        if kind in ("schema2", "oci-manifest"):
            layers = layer_stats([d.digest for d in descs])
        mt = parsed.get("mediaType") if isinstance(parsed, dict) else None
        ct = response.content_type
        if isinstance(mt, str) and ct and ct in _MANIFEST_TYPES and mt != ct:
            findings.append(Finding("manifest.media-type-mismatch", "error",
                                    f"Content-Type {ct} but the document says mediaType {mt} (CVE-2021-41190)",
                                    "$.mediaType"))
    registry_digest = payload_digest if kind == "schema1-signed" else body_digest
    digests = Digests(body_digest, payload_digest, header, registry_digest)
    _digest_findings(response, digests, findings)
    policy, now = ctx
    reference_time = _parse_time(response.fetched_at) or now
    trust: tuple[TrustDecision, ...] = ()
    if env is not None:
        if not policy.empty:
            trust = tuple(decide(sg, policy, now) for sg in env.signatures)
        _time_findings(env, manifest, reference_time, response.fetched_at is not None, findings)
    if manifest is not None:
        _reference_findings(response, manifest, findings)
    grant = _token_grant(parsed, findings) if kind == "token-response" else None
    findings.sort(key=lambda f: (-SEVERITY_ORDER[f.severity], f.code, f.where))
    return Analysis(response, kind, how, digests, payload, env, manifest, chain, layers, config, descriptors,
                    tuple(findings), trust, not policy.empty, grant)


def _token_grant(parsed: Any, findings: list[Finding]) -> dict | None:
    """Decoded claims of a saved token answer; the token itself is never kept (spec §5.5)."""
    if not isinstance(parsed, dict):
        return None
    token = parsed.get("token") or parsed.get("access_token")
    if not isinstance(token, str):
        return None
    grant = decode_grant(token)
    findings.append(Finding("token.in-clear", "info",
                            "this answer holds a bearer token in clear; mfkit shows only its decoded claims",
                            "$.token" if "token" in parsed else "$.access_token"))
    if grant.get("format") == "jwt" and not any(a.get("actions") for a in grant.get("access") or []):
        findings.append(Finding("token.empty-grant", "warning",
                                "the token grants no actions: Harbor answers wrong credentials this way", "$.token"))
    return grant


_SKEW = dt.timedelta(minutes=5)
_MANIFEST_URL = re.compile(r"/v2/(.+)/manifests/([^/?#]+)")


def _time_findings(env: Envelope, manifest: Schema1Manifest | None, reference: dt.datetime | None,
                   fetched: bool, findings: list[Finding]) -> None:
    """libtrust never checks the protected ``time`` (spec §1.9): mfkit compares it."""
    # The image's created time is the top entry's (history[0] is the image config, spec §3.2).
    top = manifest.top if manifest is not None else None
    created = _parse_time(top.created) if top is not None else None
    if top is not None and top.created is not None and created is None:
        findings.append(Finding("manifest.created-invalid", "warning",
                                f"the image's created time {top.created[:40]!r} is not RFC 3339",
                                "$.history[0].v1Compatibility.created"))
    for sg in env.signatures:
        when = _parse_time(sg.time)
        where = f"$.signatures[{sg.index}].protected.time"
        if sg.time is not None and when is None:
            findings.append(Finding("jws.time-invalid", "warning", f"protected time {sg.time!r} is not RFC 3339", where))
            continue
        if when is None:
            continue
        if reference is not None and when > reference + _SKEW:
            what = "the time it was fetched" if fetched else "now"
            findings.append(Finding("jws.time-future", "warning",
                                    f"signature {sg.index} claims {sg.time}, later than {what} "
                                    f"({reference.strftime('%Y-%m-%dT%H:%M:%SZ')})", where))
        if created is not None and when < created:
            findings.append(Finding("jws.time-before-created", "warning",
                                    f"signature {sg.index} claims {sg.time}, before the image was created "
                                    f"({created.strftime('%Y-%m-%dT%H:%M:%SZ')})", where))


def _reference_findings(response: Response, manifest: Schema1Manifest, findings: list[Finding]) -> None:
    """name/tag in the payload against what the document was fetched as (schema 1 carries both)."""
    name = tag = None
    ref = response.reference
    if ref:
        body, _, _digest = ref.partition("@")
        last = body.rsplit("/", 1)[-1]
        if ":" in last:
            body, tag = body.rsplit(":", 1)
        parts = body.split("/")
        if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
            parts = parts[1:]
        name = "/".join(parts) or None
        if name and "/" not in name and body.startswith(("docker.io/", "registry-1.docker.io/", "index.docker.io/")):
            name = "library/" + name
    elif response.url:
        m = _MANIFEST_URL.search(response.url)
        if m:
            name, tag = m.group(1), m.group(2)
            if tag.startswith("sha256:"):
                tag = None
    if name and manifest.name is not None and name != manifest.name:
        findings.append(Finding("manifest.reference-mismatch", "warning",
                                f"the payload names repository {manifest.name!r} but it was fetched as {name!r}", "$.name"))
    if tag and manifest.tag is not None and tag != manifest.tag:
        findings.append(Finding("manifest.reference-mismatch", "warning",
                                f"the payload names tag {manifest.tag!r} but it was fetched as {tag!r}", "$.tag"))


_MANIFEST_TYPES = {
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
}


def _framing_findings(response: Response, findings: list[Finding]) -> None:
    """What the transcript reader noticed about how the body was delimited."""
    if not response.meta.get("transcript"):
        return
    where = f"transcript byte {response.body_offset}" if response.body_offset is not None else ""
    for note in response.meta.get("framing") or ():
        severity = "info" if note.startswith("chunked") else "error"
        findings.append(Finding("transcript.framing", severity, note, where))
    if not response.meta.get("bounded") and not any("Content-Length" in n for n in response.meta.get("framing") or ()):
        findings.append(Finding("transcript.unbounded-body", "warning",
                                "no Content-Length: the body was taken up to the next response or prompt", where))


def _json_findings(anomalies: list[tuple[str, str]], what: str, findings: list[Finding]) -> None:
    for kind, detail in anomalies:
        if kind == "duplicate-key":
            findings.append(Finding("json.duplicate-key", "warning",
                                    f"duplicate key in the {what}: parsers disagree on which one counts", detail))
        elif kind == "lone-surrogate":
            findings.append(Finding("json.lone-surrogate", "warning",
                                    f"a lone \\uD800-\\uDFFF escape in the {what}: read as U+FFFD, as Go does", detail))
        else:
            findings.append(Finding(f"json.{kind}", "warning", f"{kind} in the {what}", detail))


def _compare_outer(outer: Any, payload_doc: Any, findings: list[Finding]) -> None:
    """Report what a reader of the whole document would see differently (spec §1.3, §2.2)."""
    if not isinstance(outer, dict) or not isinstance(payload_doc, dict):
        return
    for key, value in outer.items():
        if key == "signatures":
            continue
        if key not in payload_doc:
            findings.append(Finding("jws.unsigned-member", "error",
                                    f"member {key!r} is outside the signed payload", f"$.{key}"))
        elif payload_doc[key] != value:
            findings.append(Finding("jws.outer-differs", "error",
                                    f"member {key!r} read from the whole document differs from the signed payload "
                                    "(CVE-2014-8179 class): mfkit reports the signed value", f"$.{key}"))


def _digest_findings(response: Response, digests: Digests, findings: list[Finding]) -> None:
    if digests.header is not None and digests.registry is not None and digests.header != digests.registry:
        findings.append(Finding("digest.header-mismatch", "error",
                                f"Docker-Content-Digest {digests.header} does not match the computed "
                                f"{digests.registry} (header matches: {digests.header_matches})",
                                "header Docker-Content-Digest"))
    ref = response.reference or ""
    if "@" in ref and digests.registry is not None:
        wanted = ref.rsplit("@", 1)[1]
        if wanted != digests.registry:
            findings.append(Finding("digest.reference-mismatch", "error",
                                    f"fetched by digest {wanted} but the content digest is {digests.registry}",
                                    "reference"))
    etag = (response.header("etag") or "").strip('"')
    if etag.startswith("sha256:") and digests.registry is not None and etag != digests.registry:
        findings.append(Finding("digest.etag-mismatch", "warning",
                                f"Etag {etag} differs from the computed {digests.registry}", "header Etag"))
