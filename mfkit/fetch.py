"""``mfkit fetch``: download manifests (and what explains them) into a capture folder.

Orchestration only: the network is :mod:`mfkit.remote`, the disk is :mod:`mfkit.capture`.
For each reference it saves the manifest answer; for schema2/OCI manifests also the config
blob; for lists/indexes the children chosen by ``platform``/``all_platforms``; with
``all_tags`` every page of the tag list first; and every token answer with its secrets
removed. Manifests are fetched by a small thread pool over one connection pool and one
token per repository.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from . import capture
from .core.reference import Reference, parse_reference, parse_repository
from .errors import CaptureError, FetchError, MfkitError, PolicyError, UsageError
from .remote import MANIFEST_LIMIT, Exchange, Registry

__all__ = [
    "FetchOptions",
    "FetchSummary",
    "Fetched",
    "Failed",
    "fetch",
    "parse_accept",
    "parse_platform",
    "MEDIA_TYPES",
    "DEFAULT_ACCEPT",
    "SCHEMA1_ACCEPT",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA1_UNSIGNED = "application/vnd.docker.distribution.manifest.v1+json"
LEGACY_JSON = "application/json"
OCI_ARTIFACT = "application/vnd.oci.artifact.manifest.v1+json"
ORAS_ARTIFACT = "application/vnd.cncf.oras.artifact.manifest.v1+json"

# spec §6.4, in the order sent
DEFAULT_ACCEPT = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_SCHEMA2, SCHEMA1_SIGNED, SCHEMA1_UNSIGNED,
                  LEGACY_JSON, OCI_ARTIFACT, ORAS_ARTIFACT)
SCHEMA1_ACCEPT = (SCHEMA1_SIGNED, SCHEMA1_UNSIGNED, LEGACY_JSON)
MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "all": DEFAULT_ACCEPT,
    "default": DEFAULT_ACCEPT,
    "schema1": SCHEMA1_ACCEPT,
    "schema2": (DOCKER_SCHEMA2,),
    "oci": (OCI_MANIFEST,),
    "list": (DOCKER_LIST,),
    "index": (OCI_INDEX,),
}
_LISTS = (OCI_INDEX, DOCKER_LIST)
_IMAGES = (OCI_MANIFEST, DOCKER_SCHEMA2)


def parse_accept(text: str | None) -> tuple[str, ...]:
    """Turn ``--accept`` into media types: short names (schema1, schema2, oci, list, index,
    all) or explicit ``type/subtype`` values, comma-separated; empty means every type."""
    if not text or not text.strip():
        return DEFAULT_ACCEPT
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "/" in part:
            if any(ch.isspace() for ch in part) or part.count("/") != 1:
                raise UsageError(f"--accept: {part!r} is not a media type", code="usage.accept")
            types: tuple[str, ...] = (part,)
        elif part.lower() in MEDIA_TYPES:
            types = MEDIA_TYPES[part.lower()]
        else:
            raise UsageError(f"--accept: unknown name {part!r}",
                             hint="use schema1, schema2, oci, list, index, all or explicit media types",
                             code="usage.accept")
        out.extend(t for t in types if t not in out)
    if not out:
        raise UsageError("--accept names no media type", code="usage.accept")
    return tuple(out)


def parse_platform(text: str) -> tuple[str, str, str | None]:
    """``os/arch[/variant]`` -> (os, arch, variant)."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(f"--platform {text!r}: expected os/arch[/variant], e.g. linux/arm64/v8",
                         code="usage.platform")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


@dataclass
class FetchOptions:
    """What ``mfkit fetch`` was asked to do (the CLI flags)."""

    output: Path
    all_tags: bool = False
    accept: tuple[str, ...] = DEFAULT_ACCEPT
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    plain_http: bool = False
    insecure: bool = False
    platform: str | None = None
    all_platforms: bool = False
    max_manifest_size: int = MANIFEST_LIMIT
    timeout: float = 30.0
    concurrency: int = 4


@dataclass
class Fetched:
    """One saved response."""

    reference: str
    kind: str
    media_type: str | None
    digest: str | None
    sidecar: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Failed:
    """One thing that could not be fetched or saved."""

    reference: str
    reason: str
    code: str
    hint: str | None = None


@dataclass
class FetchSummary:
    """Outcome of a fetch run."""

    output: str
    fetched: list[Fetched] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, else 3."""
        return 3 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "output": self.output,
            "fetched": [vars(f) for f in self.fetched],
            "skipped": [{"reference": r, "reason": why} for r, why in self.skipped],
            "failed": [vars(f) for f in self.failed],
        }

    def text(self) -> str:
        """Human summary, one line per item."""
        lines = []
        for f in self.fetched:
            if f.kind in ("manifests", "blobs"):
                note = f" ({'; '.join(f.notes)})" if f.notes else ""
                lines.append(f"fetched  {f.reference}  {f.media_type or '?'}  {f.digest or '?'}{note}")
        for ref, why in self.skipped:
            lines.append(f"skipped  {ref}  {why}")
        for f in self.failed:
            lines.append(f"FAILED   {f.reference}  {f.reason}" + (f"  (hint: {f.hint})" if f.hint else ""))
        counts = {k: sum(1 for f in self.fetched if f.kind == k) for k in ("manifests", "blobs", "tags", "token")}
        lines.append(f"{counts['manifests']} manifests, {counts['blobs']} blobs, {counts['tags']} tag pages, "
                     f"{counts['token']} token answers saved in {self.output}; "
                     f"{len(self.skipped)} skipped, {len(self.failed)} failed")
        return "\n".join(lines)


def _schema1_payload(body: bytes) -> bytes | None:
    """Payload of a signed schema1 document (spec §1.3), or None when it cannot be rebuilt."""
    try:
        doc = json.loads(body)
        prot = doc["signatures"][0]["protected"]
        head = json.loads(base64.urlsafe_b64decode(prot + "=" * (-len(prot) % 4)))
        length = head["formatLength"]
        tail = head["formatTail"]
        tail_bytes = base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4))
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if not isinstance(length, int) or not 0 < length <= len(body):
        return None
    return body[:length] + tail_bytes


def _media_type(ex: Exchange, doc: Any) -> str | None:
    ct = (ex.header("content-type") or "").split(";", 1)[0].strip().lower()
    if ct and ct not in (LEGACY_JSON, "text/plain", "application/octet-stream"):
        return ct
    if isinstance(doc, dict):  # spec §6.4 fallback detection
        mt = doc.get("mediaType")
        if isinstance(mt, str):
            return mt
        if doc.get("schemaVersion") == 1:
            return SCHEMA1_SIGNED if "signatures" in doc else SCHEMA1_UNSIGNED
        if "manifests" in doc:
            return OCI_INDEX
        if "config" in doc:
            return OCI_MANIFEST
    return ct or None


def _digest_of(body: bytes, media_type: str | None) -> tuple[str, list[str]]:
    notes = []
    data = body
    if media_type == SCHEMA1_SIGNED or (media_type in (LEGACY_JSON, SCHEMA1_UNSIGNED) and b'"signatures"' in body):
        payload = _schema1_payload(body)
        if payload is None:
            notes.append("schema1 payload could not be rebuilt; digest is of the raw body")
        else:
            data = payload
    return "sha256:" + hashlib.sha256(data).hexdigest(), notes


class _Run:
    def __init__(self, options: FetchOptions, progress: Callable[[str], None]) -> None:
        self.o = options
        self.progress = progress
        self.summary = FetchSummary(str(options.output))
        self._lock = threading.Lock()
        self._folder_locks: dict[Path, threading.Lock] = {}
        self._registries: dict[str, Registry] = {}
        self._fatal: dict[str, MfkitError] = {}
        self._blobs_done: set[tuple[str, str, str]] = set()
        self.accept = ", ".join(options.accept)

    # --- bookkeeping ---

    def registry(self, ref: Reference) -> Registry:
        with self._lock:
            reg = self._registries.get(ref.api_host)
            if reg is None:
                reg = Registry(ref.api_host, username=self.o.username, password=self.o.password,
                               plain_http=self.o.plain_http, insecure=self.o.insecure, timeout=self.o.timeout,
                               max_manifest_size=self.o.max_manifest_size,
                               on_token=lambda ex, r=ref: self.save_token(r, ex))
                self._registries[ref.api_host] = reg
            return reg

    def close(self) -> None:
        for reg in self._registries.values():
            reg.close()

    def fail(self, label: str, exc: MfkitError) -> None:
        with self._lock:
            self.summary.failed.append(Failed(label, exc.message, exc.code, exc.hint))
            # failures that will repeat for every reference of this registry
            if isinstance(exc, PolicyError) or exc.code in ("auth.refused", "fetch.connect", "fetch.tls",
                                                            "fetch.timeout", "fetch.not-registry"):
                self._fatal.setdefault(label.split("/", 1)[0], exc)
        self.progress(f"failed: {label}: {exc.message}")

    def fatal_for(self, ref: Reference) -> MfkitError | None:
        with self._lock:
            return self._fatal.get(ref.domain)

    def save(self, ex: Exchange, ref: Reference, folder_ref: str | None, label: str,
             media_type: str | None = None, digest: str | None = None, notes: list[str] | None = None) -> Fetched:
        meta = ex.meta()
        meta["reference"] = label
        meta["reference_input"] = ref.input
        folder = capture.capture_dir(self.o.output, ref.domain, ref.path, ex.kind, folder_ref)
        with self._lock:
            folder_lock = self._folder_locks.setdefault(folder, threading.Lock())
        with folder_lock:  # sidecar names are chosen by probing the folder: one writer per folder
            path = capture.write_capture(folder, ex.body, meta, durable=False)  # synced once at the end
        item = Fetched(label, ex.kind, media_type, digest, str(path), notes or [])
        with self._lock:
            self.summary.fetched.append(item)
        return item

    def save_token(self, ref: Reference, ex: Exchange) -> None:
        # file the answer under the repository of the scope it was asked for
        scopes = (ex.grant or {}).get("requested_scopes") or []
        first = scopes[0] if scopes else ""
        kind, _, rest = first.partition(":")
        path = rest.rpartition(":")[0] if kind == "repository" else ""
        where = replace(ref, path=path) if path else ref
        self.save(ex, where, None, f"{where.name} token")

    # --- work ---

    def expand(self, text: str) -> list[Reference]:
        """References to fetch for one argument (all tags, or the one reference)."""
        if not self.o.all_tags:
            return [parse_reference(text)]
        repo = parse_repository(text)
        fatal = self.fatal_for(repo)
        if fatal:
            self.fail(repo.name, fatal)
            return []
        tags: list[str] = []
        try:
            for ex in self.registry(repo).list_tags(repo.path):
                self.save(ex, repo, None, f"{repo.name} tags")
                try:
                    doc = json.loads(ex.body)
                except ValueError:
                    raise FetchError(f"{repo.name}: tag list is not JSON", code="fetch.tags") from None
                page = doc.get("tags") if isinstance(doc, dict) else None
                tags.extend(t for t in page or [] if isinstance(t, str))
        except (FetchError, CaptureError) as exc:
            self.fail(repo.name, exc)
            return []
        out = []
        for t in tags:
            try:
                out.append(repo.with_tag(t))
            except UsageError:
                self.summary.skipped.append((f"{repo.name}:{t}", "tag not valid by the reference grammar"))
        if not out:
            self.summary.skipped.append((repo.name, "repository has no tags"))
        self.progress(f"{repo.name}: {len(out)} tags")
        return out

    def manifest(self, ref: Reference, depth: int = 0) -> None:
        label = str(ref)
        fatal = self.fatal_for(ref)
        if fatal:
            self.fail(label, fatal)
            return
        reg = self.registry(ref)
        try:
            ex = reg.get_manifest(ref.path, ref.ref or "latest", self.accept)
        except FetchError as exc:
            self.fail(label, exc)
            return
        try:
            doc = json.loads(ex.body)
        except ValueError:
            doc = None
        mt = _media_type(ex, doc)
        digest, notes = _digest_of(ex.body, mt)
        header = ex.header("docker-content-digest")
        if header and header != digest:
            notes.append(f"Docker-Content-Digest {header} differs from the computed digest")
        for w in [v for k, v in ex.headers if k.lower() == "warning"]:
            self.progress(f"warning from registry for {label}: {w}")  # spec §6.9
        self.save(ex, ref, ref.ref, label, mt, digest, notes)
        if ref.digest and ref.digest.startswith("sha256:") and ref.digest != digest:
            # spec §5.10 rule 5: pulled by digest, the content must match it
            self.fail(label, FetchError(f"content digest {digest} does not match the requested digest "
                                        "(kept as evidence)", code="fetch.digest-mismatch"))
        self.progress(f"saved {label} ({mt}, {digest})")
        if not isinstance(doc, dict):
            return
        if mt in _IMAGES:
            cfg = doc.get("config")
            if isinstance(cfg, dict) and isinstance(cfg.get("digest"), str):
                self.blob(ref, cfg["digest"])
        elif mt in _LISTS and depth == 0:
            self.children(ref, doc)

    def blob(self, ref: Reference, digest: str) -> None:
        key = (ref.api_host, ref.path, digest)
        label = f"{ref.name}@{digest}"
        with self._lock:
            if key in self._blobs_done:
                return
            self._blobs_done.add(key)
        try:
            ex = self.registry(ref).get_blob(ref.path, digest)
        except FetchError as exc:
            self.fail(label, exc)
            return
        computed = "sha256:" + hashlib.sha256(ex.body).hexdigest()
        self.save(ex, ref, digest, label, (ex.header("content-type") or "").split(";")[0] or None, computed)
        if digest.startswith("sha256:") and computed != digest:
            self.fail(label, FetchError(f"blob content digest {computed} does not match (kept as evidence)",
                                        code="fetch.digest-mismatch"))

    def children(self, ref: Reference, doc: dict[str, Any]) -> None:
        entries = [m for m in doc.get("manifests") or [] if isinstance(m, dict) and isinstance(m.get("digest"), str)]
        if not self.o.platform and not self.o.all_platforms:
            for m in entries:
                self.summary.skipped.append((f"{ref.name}@{m['digest']}",
                                             f"index child {_plat(m)} not followed (use --platform or --all-platforms)"))
            return
        chosen = entries
        if self.o.platform and not self.o.all_platforms:
            want_os, want_arch, want_var = parse_platform(self.o.platform)
            chosen = [m for m in entries if _matches(m, want_os, want_arch, want_var)]
            if not chosen:
                self.fail(str(ref), FetchError(f"no entry for platform {self.o.platform} in the index "
                                               f"(has: {', '.join(_plat(m) for m in entries) or 'none'})",
                                               code="fetch.platform"))
                return
            chosen = chosen[:1]
        for m in chosen:
            try:
                child = ref.with_digest(m["digest"])
            except UsageError as exc:
                self.fail(f"{ref.name}@{m['digest']}", exc)
                continue
            self.manifest(child, depth=1)


def _plat(m: dict[str, Any]) -> str:
    p = m.get("platform") if isinstance(m.get("platform"), dict) else {}
    parts = [str(p.get("os", "?")), str(p.get("architecture", "?"))]
    if p.get("variant"):
        parts.append(str(p["variant"]))
    return "/".join(parts)


def _matches(m: dict[str, Any], os_: str, arch: str, variant: str | None) -> bool:
    p = m.get("platform") if isinstance(m.get("platform"), dict) else {}
    if p.get("os") != os_ or p.get("architecture") != arch:
        return False
    return variant is None or p.get("variant") == variant


def fetch(references: list[str], options: FetchOptions, progress: Callable[[str], None] | None = None) -> FetchSummary:
    """Fetch every reference into ``options.output`` and return what happened.

    Raises:
        UsageError: a reference or option is invalid (nothing is fetched then).
        CaptureError: the disk refused (the run stops).
    """
    say = progress or (lambda _msg: None)
    if not references:
        raise UsageError("give at least one reference", code="usage.reference")
    if options.platform:
        parse_platform(options.platform)
    for text in references:  # validate every argument before any network traffic
        parse_repository(text) if options.all_tags else parse_reference(text)
    run = _Run(options, say)
    try:
        targets: list[Reference] = []
        for text in references:
            targets.extend(run.expand(text))
        with ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="mfkit-fetch") as pool:
            futures: list[Future[None]] = [pool.submit(run.manifest, ref) for ref in targets]
            try:
                for fut in as_completed(futures):
                    fut.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    finally:
        run.close()
        capture.sync()  # one flush for the whole batch; renames already kept files whole
    return run.summary
