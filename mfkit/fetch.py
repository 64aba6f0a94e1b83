"""``mfkit fetch``: download manifests (and what explains them) into a capture folder.

Orchestration only: the network is :mod:`mfkit.remote`, the disk is :mod:`mfkit.capture`.
For each reference it saves the manifest answer; for schema2/OCI manifests also the config
blob; for lists/indexes the children chosen by ``platform``/``all_platforms``; with
``all_tags`` every page of the tag list first; and every token answer with its secrets
removed. Manifests are fetched by a small thread pool (``jobs``) over one connection pool
and one token per repository.

Robustness: credentials are looked up where skopeo/podman/docker keep them
(:mod:`mfkit.credstore`); tag and catalog pages follow ``Link`` headers within the same
origin (spec §6.3); a manifest whose body does not match its ``Docker-Content-Digest`` or
the requested digest is retried and never saved as good (spec §5.10 rule 5); with
``all_tags`` a rerun on the same folder skips tags already captured when a ``HEAD`` gives
the same digest (resume); Ctrl-C stops every worker before the next write.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from . import capture
from .core.http import media_type
from .progress import Progress
from .core.credentials import Credentials
from .core.jws import signed_payload
from .core.reference import Reference, is_valid_tag, parse_reference, parse_repository
from .credstore import CredentialSearch
from .errors import CaptureError, FetchError, InputError, MfkitError, PolicyError, UsageError
from .core.printable import printable
from .remote import LIST_LIMIT, MANIFEST_LIMIT, MAX_PAGES, UNSEGMENTABLE, Exchange, Registry, RetryPolicy, shown

__all__ = [
    "FetchOptions",
    "FetchSummary",
    "Fetched",
    "Failed",
    "Progress",
    "fetch",
    "registry_digest",
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
# a Docker-Content-Digest that can be compared with the body (spec §4)
_USABLE_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
_DIGEST_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
SUMMARY_CAP = 1000  # characters of one summary field (registry text inside it is capped at 300 already)
CLEANUP_WAIT = 10.0  # seconds SHA256SUMS and the final flush may take after Ctrl-C


def _field(text: object, cap: int = SUMMARY_CAP) -> str:
    """One summary field as shown (text and --json): escaped and capped."""
    return shown(text, cap)
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
    """What ``mfkit fetch`` was asked to do (the CLI flags).

    Credentials: ``username``/``password`` (``--creds`` + ``--password-stdin``) win; else,
    unless ``no_creds``, the files and helpers of :mod:`mfkit.credstore` are searched with
    ``env`` (``os.environ`` when None); else anonymous.
    """

    output: Path
    all_tags: bool = False
    catalog: bool = False
    accept: tuple[str, ...] = DEFAULT_ACCEPT
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    no_creds: bool = False
    env: Mapping[str, str] | None = field(default=None, repr=False)
    plain_http: bool = False
    insecure: bool = False
    ca_file: str | None = None
    platform: str | None = None
    all_platforms: bool = False
    max_manifest_size: int = MANIFEST_LIMIT
    max_list_size: int = LIST_LIMIT
    timeout: float = 30.0
    total_timeout: float | None = None  # per request attempt; None: connect + 4 x read timeout
    connect_timeout: float | None = None
    read_timeout: float | None = None
    retries: int = 4
    retry_base: float = 0.5
    retry_max_wait: float = 30.0
    retry_budget: float = 120.0
    max_pages: int = MAX_PAGES
    force: bool = False
    refetch: bool = False
    concurrency: int = 4  # --jobs

    @property
    def jobs(self) -> int:
        """Parallel fetches (alias of ``concurrency``)."""
        return max(1, self.concurrency)


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
    """Outcome of a fetch run.

    ``warnings`` are oddities that did not stop the run (paging stopped, duplicate or
    invalid tags, retries given up on nothing); ``credentials`` maps each registry host
    to the source of its credentials (never the values).
    """

    output: str
    fetched: list[Fetched] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    credentials: dict[str, str] = field(default_factory=dict)
    retries: int = 0

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, else 3."""
        return 3 if self.failed else 0

    def counts(self) -> dict[str, int]:
        """Saved items by kind, plus skipped and failed."""
        out = {k: sum(1 for f in self.fetched if f.kind == k) for k in ("manifests", "blobs", "tags", "catalog",
                                                                          "token")}
        out.update(skipped=len(self.skipped), failed=len(self.failed), warnings=len(self.warnings),
                   retries=self.retries)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "output": self.output,
            "counts": self.counts(),
            "credentials": dict(self.credentials),
            "fetched": [{**vars(f), "reference": _field(f.reference), "notes": [_field(n) for n in f.notes],
                         "media_type": _field(f.media_type) if f.media_type else f.media_type}
                        for f in self.fetched],
            "skipped": [{"reference": _field(r), "reason": _field(why)} for r, why in self.skipped],
            "failed": [{"reference": _field(f.reference), "reason": _field(f.reason), "code": _field(f.code, 100),
                        "hint": _field(f.hint) if f.hint else f.hint} for f in self.failed],
            "warnings": [_field(w) for w in self.warnings],
        }

    def text(self) -> str:
        """Human summary, one line per item."""
        lines = [f"credentials: {'from ' + src if src == FLAG_CREDENTIALS else src} for {host}"
                 for host, src in sorted(self.credentials.items())]
        for f in self.fetched:
            if f.kind in ("manifests", "blobs"):
                note = f" ({'; '.join(_field(n) for n in f.notes)})" if f.notes else ""
                lines.append(f"fetched  {_field(f.reference)}  {_field(f.media_type or '?')}  "
                             f"{_field(f.digest or '?')}{note}")
        for ref, why in self.skipped:
            lines.append(f"skipped  {_field(ref)}  {_field(why)}")
        for w in self.warnings:
            lines.append(f"warning  {_field(w)}")
        for f in self.failed:
            lines.append(f"FAILED   {_field(f.reference)}  {_field(f.reason)}"
                         + (f"  (hint: {_field(f.hint)})" if f.hint else ""))
        c = self.counts()
        def n(key: str, word: str) -> str:
            return f"{c[key]} {word}{'' if c[key] == 1 else 's'}"

        lines.append(f"{n('manifests', 'manifest')}, {n('blobs', 'blob')}, {n('tags', 'tag page')}, "
                     f"{n('catalog', 'catalog page')}, {n('token', 'token answer')} saved in {self.output}; "
                     f"{c['skipped']} skipped, {c['failed']} failed, {n('warnings', 'warning')}, "
                     f"{c['retries']} {'retry' if c['retries'] == 1 else 'retries'}")
        return "\n".join(lines)


FLAG_CREDENTIALS = "-u/--password-stdin"  # credentials source name for the command-line flags


class _Lines(Progress):
    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def message(self, text: str) -> None:
        self.say(text)


def registry_digest(body: bytes, media_type: str | None) -> tuple[str, list[str]]:
    """What the registry calls ``body`` (spec §4): the payload digest for signed schema 1,
    sha256 of the bytes otherwise; plus notes when the payload cannot be rebuilt."""
    signed = media_type == SCHEMA1_SIGNED or (media_type in (LEGACY_JSON, SCHEMA1_UNSIGNED, None)
                                             and b'"signatures"' in body)
    if signed:
        payload = signed_payload(body)  # rebuilt only: verifying is analyze's job
        if payload is not None:
            return "sha256:" + hashlib.sha256(payload).hexdigest(), []
        return ("sha256:" + hashlib.sha256(body).hexdigest(),
                ["schema1 payload could not be rebuilt; digest is of the raw body"])
    return "sha256:" + hashlib.sha256(body).hexdigest(), []


def _media_type(ex: Exchange, doc: Any) -> str | None:
    return _detect_type(ex.header("content-type"), doc)


def _detect_type(content_type: str | None, doc: Any) -> str | None:
    ct = media_type(content_type) or ""
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


def _guess_type(content_type: str | None, body: bytes) -> str | None:
    ct = media_type(content_type) or ""
    if ct and ct not in (LEGACY_JSON, "text/plain", "application/octet-stream"):
        return ct
    try:
        return _detect_type(content_type, json.loads(body))
    except (ValueError, UnicodeDecodeError):
        return ct or None


class _Run:
    def __init__(self, options: FetchOptions, progress: Progress) -> None:
        self.o = options
        self.p = progress
        self.summary = FetchSummary(str(options.output))
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._folder_locks: dict[Path, threading.Lock] = {}
        self._registries: dict[str, Registry] = {}
        self._fatal: dict[str, MfkitError] = {}
        self._blobs_done: set[tuple[str, str, str]] = set()
        self._done: set[str] = set()
        self.accept = ", ".join(options.accept)
        self._current = threading.local()  # the reference this thread works on (token sidecars)
        self.creds = CredentialSearch(env=dict(options.env if options.env is not None else os.environ),
                                      warn=self.warn)

    # --- bookkeeping ---

    def say(self, text: str) -> None:
        self.p.message(shown(text, 4 * SUMMARY_CAP))

    def warn(self, text: str) -> None:
        with self._lock:
            if text in self.summary.warnings:
                return
            self.summary.warnings.append(text)
        self.say(f"warning: {text}")

    def retried(self, text: str) -> None:
        with self._lock:
            self.summary.retries += 1
        self.say(text)

    def credentials_for(self, ref: Reference) -> Credentials | None:
        """--creds first, then the files and helpers unless --no-creds (skopeo order)."""
        if self.o.username is not None:
            return Credentials(self.o.username, self.o.password, None, FLAG_CREDENTIALS)
        if self.o.no_creds:
            return None
        return self.creds.lookup(ref.domain)

    def registry(self, ref: Reference) -> Registry:
        with self._lock:
            reg = self._registries.get(ref.api_host)
            if reg is not None:
                return reg
        creds = self.credentials_for(ref)  # may run a helper: outside the lock
        with self._lock:
            reg = self._registries.get(ref.api_host)
            if reg is None:
                if creds is not None and creds.usable:
                    self.summary.credentials[ref.api_host] = creds.source
                else:
                    creds = None
                    self.summary.credentials[ref.api_host] = "none (anonymous)" if not self.o.no_creds \
                        else "none (--no-creds)"
                reg = Registry(
                    ref.api_host, username=creds.username if creds else None,
                    password=creds.password if creds else None,
                    identity_token=creds.identity_token if creds else None,
                    plain_http=self.o.plain_http, insecure=self.o.insecure, ca_file=self.o.ca_file,
                    timeout=self.o.timeout, connect_timeout=self.o.connect_timeout, read_timeout=self.o.read_timeout,
                    max_manifest_size=self.o.max_manifest_size, max_list_size=self.o.max_list_size,
                    total_timeout=self.o.total_timeout, jobs=self.o.jobs,
                    retry=RetryPolicy(self.o.retries, self.o.retry_base, self.o.retry_max_wait, self.o.retry_budget),
                    on_token=self.save_token, on_retry=self.retried, stop=self.stop)
                self._registries[ref.api_host] = reg
            return reg

    def close(self) -> None:
        for reg in list(self._registries.values()):
            reg.close()

    def abort(self) -> None:
        """Ctrl-C: no new request or write, and every open socket shut down (hung reads end)."""
        self.stop.set()
        with self._lock:
            regs = list(self._registries.values())
        for reg in regs:
            reg.abort()

    def working_on(self, ref: Reference) -> None:
        self._current.ref = ref

    def fail(self, label: str, exc: MfkitError) -> None:
        if exc.code == "fetch.interrupted":
            return
        reason = shown(_without_label(exc.message, label), 4 * SUMMARY_CAP)
        with self._lock:
            self.summary.failed.append(Failed(label, reason, exc.code, exc.hint))
            # failures that will repeat for every reference of this registry
            if isinstance(exc, PolicyError) or exc.code in ("auth.refused", "fetch.connect", "fetch.tls",
                                                            "fetch.not-registry", "auth.empty-grant"):
                self._fatal.setdefault(label.split("/", 1)[0], exc)
        self.say(f"failed: {label}: {reason}")

    def fatal_for(self, ref: Reference) -> MfkitError | None:
        with self._lock:
            return self._fatal.get(ref.domain)

    def save(self, ex: Exchange, ref: Reference, folder_ref: str | None, label: str,
             media_type: str | None = None, digest: str | None = None, notes: list[str] | None = None,
             repository: str | None = "", reference_input: str | None = None) -> Fetched | None:
        if self.stop.is_set():
            return None  # interrupted: nothing new is written
        meta = ex.meta()
        meta["reference"] = label
        meta["reference_input"] = ref.input if reference_input is None else reference_input
        path_part = ref.path if repository == "" else repository
        folder = capture.capture_dir(self.o.output, ref.domain, path_part, ex.kind, folder_ref)
        with self._lock:
            folder_lock = self._folder_locks.setdefault(folder, threading.Lock())
        with folder_lock:  # sidecar names are chosen by probing the folder: one writer per folder
            # synced, and SHA256SUMS written, once per folder at the end of the run
            path = capture.write_capture(folder, ex.body, meta, durable=False, sums=False)
        item = Fetched(label, ex.kind, media_type, digest, str(path), notes or [])
        with self._lock:
            self.summary.fetched.append(item)
        return item

    def save_token(self, ex: Exchange) -> None:
        """File a token answer under the repository its scope names; ``reference_input`` is
        the argument being fetched when it is in that repository, else the repository."""
        ref: Reference | None = getattr(self._current, "ref", None)
        if ref is None:  # pragma: no cover - every request runs under working_on()
            return
        scopes = (ex.grant or {}).get("requested_scopes") or []
        first = scopes[0] if scopes else ""
        kind, _, rest = first.partition(":")
        path = rest.rpartition(":")[0] if kind == "repository" else ""
        if path:
            where = replace(ref, path=path)
            given = ref.input if path == ref.path else where.name
            self.save(ex, where, None, f"{where.name} token", reference_input=given)
        else:
            self.save(ex, ref, None, f"{ref.domain} token", repository=None, reference_input=ref.domain)

    # --- work ---

    def catalog(self, text: str) -> list[str]:
        """Save every catalog page of the registry ``text`` (host[:port]); return the repositories."""
        host = text.rstrip("/")
        repo = parse_repository(f"{host}/x") if "/" not in host else parse_repository(host)
        fatal = self.fatal_for(repo)
        if fatal:
            self.fail(f"{repo.domain} catalog", fatal)
            return []
        names: list[str] = []
        notes: list[str] = []
        self.working_on(repo)
        try:
            for ex in self.registry(repo).catalog(notes, max_pages=self.o.max_pages):
                self.save(ex, repo, None, f"{repo.domain} catalog", repository=None)
                try:
                    doc = json.loads(ex.body)
                except ValueError:
                    raise FetchError(f"{repo.domain}: catalog page is not JSON", code="fetch.catalog") from None
                page = doc.get("repositories") if isinstance(doc, dict) else None
                names.extend(r for r in page or [] if isinstance(r, str))
        except (FetchError, CaptureError) as exc:
            self.fail(f"{repo.domain} catalog", exc)
        for n in notes:
            self.warn(n)
        out: list[str] = []
        for name in names:
            if name in out:
                self.warn(f"{repo.domain} catalog: repository {shown(repr(name))} listed twice")
                continue
            out.append(name)
        self.say(f"{repo.domain}: {len(out)} repositories in the catalog")
        return [f"{repo.domain}/{n}" for n in out]

    def expand(self, text: str) -> list[Reference]:
        """References to fetch for one argument (all tags, or the one reference)."""
        if not self.o.all_tags:
            return [parse_reference(text)]
        try:
            repo = parse_repository(text)
        except UsageError as exc:  # a catalog entry that is not a valid name
            self.warn(f"{shown(text)}: {shown(exc.message)}; not fetched")
            return []
        fatal = self.fatal_for(repo)
        if fatal:
            self.fail(repo.name, fatal)
            return []
        tags: list[str] = []
        seen: set[str] = set()
        notes: list[str] = []
        self.working_on(repo)
        try:
            for ex in self.registry(repo).list_tags(repo.path, notes, max_pages=self.o.max_pages):
                self.save(ex, repo, None, f"{repo.name} tags")
                try:
                    doc = json.loads(ex.body)
                except ValueError:
                    raise FetchError(f"{repo.name}: tag list is not JSON", code="fetch.tags") from None
                page = doc.get("tags") if isinstance(doc, dict) else None
                for t in page or []:
                    if not isinstance(t, str):
                        self.warn(f"{repo.name}: tag list holds a non-string entry {shown(repr(t))}; ignored")
                    elif t in seen:
                        self.warn(f"{repo.name}: tag {shown(repr(t))} listed more than once; fetched once")
                    else:
                        seen.add(t)
                        tags.append(t)
        except (FetchError, CaptureError) as exc:
            self.fail(repo.name, exc)
            return []
        finally:
            for n in notes:
                self.warn(n)
        out = []
        for t in tags:
            if is_valid_tag(t):
                out.append(repo.with_tag(t))
            elif t in UNSEGMENTABLE:  # not even with --force: the URL would name another path
                self.warn(f"{repo.name}: tag {shown(repr(t))} cannot be expressed as a URL path segment; not fetched")
                self.summary.skipped.append((f"{repo.name}:{shown(t)}",
                                             "cannot be expressed as a URL path segment"))
            elif self.o.force:
                self.warn(f"{repo.name}: tag {shown(repr(t))} breaks the tag grammar (spec §6.1); "
                          "fetched anyway (--force)")
                out.append(replace(repo, tag=t, digest=None, tag_defaulted=False))
            else:
                self.warn(f"{repo.name}: tag {shown(repr(t))} breaks the tag grammar (spec §6.1); "
                          "not fetched (--force fetches it)")
                self.summary.skipped.append((f"{repo.name}:{shown(t)}",
                                             "tag not valid by the reference grammar (spec §6.1)"))
        if not tags:
            self.summary.skipped.append((repo.name, "repository has no tags"))
        self.say(f"{repo.name}: {len(out)} tags")
        return out

    def existing_digest(self, ref: Reference) -> str | None:
        """Registry digest of the newest complete 200 capture of ``ref`` already in the folder."""
        folder = capture.capture_dir(self.o.output, ref.domain, ref.path, "manifests", ref.ref)
        if not folder.is_dir():
            return None
        for meta in sorted(folder.glob("*" + capture.META_SUFFIX), reverse=True):
            try:
                resp = capture.read_capture(meta, max_size=self.o.max_manifest_size)
            except InputError:
                continue  # altered or half-written: fetch again
            if resp.status != 200:
                continue
            from .analysis.document import analyze  # only a resumed run reads old captures back

            return analyze(resp).digests.registry
        return None

    def resume_skip(self, ref: Reference, reg: Registry) -> str | None:
        """Why ``ref`` need not be fetched again, or None (resume of --all-tags)."""
        if not (self.o.all_tags and not self.o.refetch and ref.tag and not ref.digest):
            return None
        have = self.existing_digest(ref)
        if have is None:
            return None
        try:
            head = reg.head_manifest(ref.path, ref.tag, self.accept)
        except FetchError as exc:
            self.say(f"{shown(ref)}: HEAD failed ({shown(exc.message)}); fetching again")
            return None
        now = head.header("docker-content-digest")
        if now is None:
            self.say(f"{shown(ref)}: HEAD gave no Docker-Content-Digest; fetching again")
            return None
        if now != have:
            self.say(f"{shown(ref)}: tag moved ({have} -> {shown(now)}); fetching again")
            return None
        return f"already captured ({have}; HEAD digest unchanged)"

    def manifest(self, ref: Reference, depth: int = 0) -> str:
        label = shown(str(ref), SUMMARY_CAP)
        if self.stop.is_set():
            return "skipped"
        self.working_on(ref)
        fatal = self.fatal_for(ref)
        if fatal:
            self.fail(label, fatal)
            return "failed"
        computed: dict[str, Any] = {}

        def check(resp: Any, body: bytes) -> str | None:
            # spec §5.10 rule 5: the body must match the header and, by digest, the request
            mt = _guess_type(resp.headers.get("content-type"), body)
            digest, notes = registry_digest(body, mt)
            computed.update(mt=mt, digest=digest, notes=notes)
            if ref.digest and ref.digest.startswith("sha256:") and digest != ref.digest:
                return f"content digest {digest} does not match the requested {ref.digest}"
            header = resp.headers.get("docker-content-digest")
            if header and header.startswith("sha256:") and _USABLE_DIGEST.fullmatch(header) and header != digest:
                if notes:  # a signed schema 1 cut short: its payload cannot be rebuilt to check the header
                    return f"the signed payload cannot be rebuilt to check Docker-Content-Digest {header} (truncated?)"
                return f"content digest {digest} does not match Docker-Content-Digest {header}"
            return None

        try:
            reg = self.registry(ref)
            why = self.resume_skip(ref, reg) if depth == 0 else None
            if why:
                with self._lock:
                    self.summary.skipped.append((label, why))
                return "skipped"
            if (ref.ref or "latest") in UNSEGMENTABLE or (ref.tag is not None and ref.tag in UNSEGMENTABLE):
                with self._lock:
                    self.summary.skipped.append((label, "cannot be expressed as a URL path segment"))
                return "skipped"
            ex = reg.get_manifest(ref.path, ref.ref or "latest", self.accept, check=check)
        except FetchError as exc:
            self.fail(label, exc)
            return "failed"
        try:
            doc = json.loads(ex.body)
        except ValueError:
            doc = None
        mt = _media_type(ex, doc)
        digest, notes = registry_digest(ex.body, mt)
        header = ex.header("docker-content-digest")
        if header and not _USABLE_DIGEST.fullmatch(header):
            self.warn(f"{label}: registry sent an unusable Docker-Content-Digest {shown(repr(header))}")
            notes.append("Docker-Content-Digest unusable; not compared")
        elif header and header != digest:
            notes.append(f"Docker-Content-Digest {shown(header)} differs from the computed digest")
        for w in ex.header_values("warning"):
            self.say(f"warning from registry for {label}: {shown(w)}")  # spec §6.9
        if self.save(ex, ref, ref.ref, label, mt, digest, notes) is None:
            return "skipped"
        self.say(f"saved {label} ({mt}, {digest})")
        if not isinstance(doc, dict):
            return "fetched"
        if mt in _IMAGES:
            cfg = doc.get("config")
            if isinstance(cfg, dict) and isinstance(cfg.get("digest"), str):
                self.blob(ref, cfg["digest"])
        elif mt in _LISTS and depth == 0:
            self.children(ref, doc)
        return "fetched"

    def blob(self, ref: Reference, digest: str) -> None:
        key = (ref.api_host, ref.path, digest)
        label = f"{ref.name}@{shown(digest)}"
        if not _DIGEST_GRAMMAR.fullmatch(digest):
            self.fail(label, FetchError(f"config digest {shown(repr(digest))} is not a digest; not fetched",
                                        code="fetch.bad-digest"))
            return
        with self._lock:
            if key in self._blobs_done:
                return
            self._blobs_done.add(key)

        def check(_resp: Any, body: bytes) -> str | None:
            computed = "sha256:" + hashlib.sha256(body).hexdigest()
            if digest.startswith("sha256:") and computed != digest:
                return f"blob content digest {computed} does not match"
            return None

        try:
            ex = self.registry(ref).get_blob(ref.path, digest, check=check)
        except FetchError as exc:
            self.fail(label, exc)
            return
        computed = "sha256:" + hashlib.sha256(ex.body).hexdigest()
        self.save(ex, ref, digest, label, (ex.header("content-type") or "").split(";")[0] or None, computed)

    def children(self, ref: Reference, doc: dict[str, Any]) -> None:
        entries = [m for m in doc.get("manifests") or [] if isinstance(m, dict) and isinstance(m.get("digest"), str)]
        if not self.o.platform and not self.o.all_platforms:
            for m in entries:
                self.summary.skipped.append((f"{ref.name}@{shown(m['digest'])}",
                                             f"index child {shown(_plat(m))} not followed "
                                             "(use --platform or --all-platforms)"))
            return
        chosen = entries
        if self.o.platform and not self.o.all_platforms:
            want_os, want_arch, want_var = parse_platform(self.o.platform)
            chosen = [m for m in entries if _matches(m, want_os, want_arch, want_var)]
            if not chosen:
                self.fail(str(ref), FetchError(f"no entry for platform {self.o.platform} in the index "
                                               f"(has: {shown(', '.join(_plat(m) for m in entries) or 'none')})",
                                               code="fetch.platform"))
                return
            chosen = chosen[:1]
        for m in chosen:
            try:
                child = ref.with_digest(m["digest"])
            except UsageError as exc:
                self.fail(f"{ref.name}@{shown(m['digest'])}", exc)
                continue
            self.manifest(child, depth=1)


def _without_label(message: str, label: str) -> str:
    """``message`` without a leading ``label: `` (errors name what failed; the summary already does)."""
    head, sep, rest = message.partition(": ")
    if not sep:
        return message
    for form in (label, label.replace("@", ":", 1)):  # the registry module writes host/name:digest
        tail = form.split("/", 1)[-1]
        if head == form or head.endswith("/" + tail):
            return rest
    return message


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


def _check_options(references: list[str], options: FetchOptions) -> None:
    if not references:
        raise UsageError("give at least one reference", code="usage.reference")
    if options.platform:
        parse_platform(options.platform)
    for text in references:  # validate every argument before any network traffic
        if options.catalog:
            host = text.rstrip("/")
            if "/" in host or "@" in host:
                raise UsageError(f"--catalog takes registry hosts (host[:port]), not {text!r}",
                                 code="usage.reference")
            parse_repository(f"{host}/x")
        elif options.all_tags:
            parse_repository(text)
        else:
            parse_reference(text)
    if options.ca_file and not Path(options.ca_file).is_file():
        raise UsageError(f"--ca-file {options.ca_file}: no such file", code="usage.ca-file")
    _check_output(Path(options.output))


def _check_output(out: Path) -> None:
    """``-o`` must be a folder or creatable as one: checked before any network traffic."""
    shown_out = printable(str(out))
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"-o {shown_out}: exists and is not a folder", code="usage.output",
                             hint="name a folder (it is created if needed)")
        if not os.access(out, os.W_OK | os.X_OK):
            raise UsageError(f"-o {shown_out}: folder is not writable", code="usage.output")
        return
    parent = out.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"-o {shown_out}: cannot be created ({printable(str(parent))} is not a folder)",
                         code="usage.output")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"-o {shown_out}: cannot be created ({printable(str(parent))} is not writable)",
                         code="usage.output")


def fetch(references: list[str], options: FetchOptions,
          progress: Callable[[str], None] | Progress | None = None) -> FetchSummary:
    """Fetch every reference into ``options.output`` and return what happened.

    ``progress`` is a :class:`Progress` or a plain callable taking one line.

    Raises:
        UsageError: a reference or option is invalid (nothing is fetched then).
        CaptureError: the disk refused (the run stops).
        KeyboardInterrupt: after every worker stopped; no partial file is left.
    """
    sink = progress if isinstance(progress, Progress) else _Lines(progress or (lambda _msg: None))
    _check_options(references, options)
    run = _Run(options, sink)
    failed = True  # until the run ends normally: then the final flush is not time-bounded
    try:
        repos = list(references)
        if options.catalog:
            repos = []
            for text in references:
                repos.extend(run.catalog(text))
            if not options.all_tags:
                failed = False
                return run.summary
        targets: list[Reference] = []
        for text in repos:
            targets.extend(run.expand(text))
        sink.start(len(targets))
        pool = ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="mfkit-fetch")
        futures: dict[Future[str], str] = {}
        try:
            futures = {pool.submit(run.manifest, ref): shown(str(ref), SUMMARY_CAP) for ref in targets}
            for fut in as_completed(futures):
                sink.advance(futures[fut], fut.result())
        except BaseException:
            # Ctrl-C: queued work is cancelled, workers stop before their next request or
            # write, and every open socket is shut down so that a hung read ends now
            run.abort()
            pool.shutdown(wait=False, cancel_futures=True)
            wait(futures, timeout=CLEANUP_WAIT)  # bounded: aborted reads end at once
            raise
        pool.shutdown(wait=True)
        failed = False
    except BaseException:
        run.abort()
        raise
    finally:
        run.close()
        folders = list(run._folder_locks)
        if failed:
            _bounded(lambda: _finish(folders), CLEANUP_WAIT)
        else:
            _finish(folders)
    return run.summary


def _finish(folders: list[Path]) -> None:
    for folder in folders:  # also after Ctrl-C: every saved body gets its sums line
        capture.write_sums(folder, durable=False)
    capture.sync()  # one flush for the whole batch; renames already kept files whole


def _bounded(work: Callable[[], None], seconds: float) -> None:
    """Run ``work`` in a daemon thread and wait at most ``seconds`` (after Ctrl-C the
    process must end promptly even if the disk is slow)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - reported below, the interrupt wins
            errors.append(exc)

    t = threading.Thread(target=target, name="mfkit-fetch-finish", daemon=True)
    t.start()
    t.join(seconds)
