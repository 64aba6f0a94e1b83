"""Notebook and CLI entry points over many inputs: history, corpus, diff, forensic report.

These read inputs (through :mod:`mfkit.inputs`) and call the pure analysis; they never
write files (the CLI writes through :func:`mfkit.capture.atomic_write`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

from .analysis.corpus import Corpus, CorpusBuilder, DocSummary, summarize
from .analysis.diff import DiffResult, diff_analyses
from .analysis.document import Analysis, analyze
from .analysis.history import HISTORY_KINDS, History, build_history
from .core.http import Response
from .errors import InputError, UsageError
from .inputs import DEFAULT_MAX_SIZE, iter_inputs

__all__ = ["history", "histories", "corpus", "corpus_from", "diff", "load_one", "report_items", "CHUNK"]

CHUNK = 256  # documents per task sent to a worker process


def _attach(paths: Iterable[str], config: str | None, max_size: int
            ) -> tuple[list[tuple[str, Analysis, History | None]], list[InputError]]:
    loaded: list[tuple[str, Analysis]] = []
    errors: list[InputError] = []
    for path in paths:
        for item in iter_inputs([str(path)], max_size=max_size):
            if isinstance(item, InputError):
                errors.append(item)
            else:
                loaded.append((str(path), analyze(item)))
    forced: tuple[bytes, str] | None = None
    if config is not None:
        got = list(iter_inputs([config], max_size=max_size))
        if len(got) != 1 or isinstance(got[0], InputError):
            raise got[0] if got and isinstance(got[0], InputError) else InputError(
                f"{config}: expected one image config document", code="input.config")
        forced = (got[0].body, got[0].source)
    by_digest = {a.digests.body: a for _, a in loaded}
    used: set[str] = set()
    for _, a in loaded:
        if a.kind in ("schema2", "oci-manifest") and a.config is not None and a.config.digest in by_digest:
            used.add(a.config.digest)
    out: list[tuple[str, Analysis, History | None]] = []
    for path, a in loaded:
        if a.kind == "image-config" and a.digests.body in used:
            continue  # shown through its manifest
        if a.kind not in HISTORY_KINDS:
            out.append((path, a, None))
            continue
        cfg: tuple[bytes, str] | None = None
        if a.kind in ("schema2", "oci-manifest"):
            if forced is not None:
                cfg = forced
            elif a.config is not None and a.config.digest in by_digest:
                found = by_digest[a.config.digest]
                cfg = (found.response.body, found.source)
        out.append((path, a, build_history(a, cfg[0] if cfg else None, cfg[1] if cfg else None)))
    return out, errors


def histories(paths: Iterable[str], *, config: str | None = None, max_size: int = DEFAULT_MAX_SIZE
              ) -> tuple[list[tuple[str, Analysis, History]], list[InputError]]:
    """Read every input, then build a history per document that has one.

    Schema 2 / OCI configs are found among the inputs by digest (every body is indexed by
    ``sha256:`` + sha256(body); a capture folder keeps them under ``blobs/``), or taken from
    ``config`` when given.  Config blobs used that way are not listed on their own.

    Returns:
        ``([(input path, analysis, history)], [unreadable inputs])`` in input order.
    """
    items, errors = _attach(paths, config, max_size)
    return [(p, a, h) for p, a, h in items if h is not None], errors


def history(*paths: str, config: str | None = None) -> list[History]:
    """The ``docker history`` view of every document under ``paths`` (newest first per document).

    Args:
        paths: files, folders, transcripts or capture folders.
        config: an image config file to use for every schema 2 / OCI manifest (else found by digest).

    Raises:
        InputError: the first input that cannot be read.
    """
    items, errors = histories(paths, config=config)
    if errors:
        raise errors[0]
    return [h for _, _, h in items]


def _summaries(batch: list[Response]) -> list[DocSummary]:
    """Worker task: analyze and reduce a chunk of responses."""
    return [summarize(analyze(r)) for r in batch]


def _chunks(items: Iterable[Response | InputError], size: int) -> Iterator[list[Response | InputError]]:
    batch: list[Response | InputError] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def corpus_from(items: Iterable[Response | InputError], *, jobs: int = 1, chunk: int = CHUNK) -> Corpus:
    """Fold a stream of responses into a :class:`Corpus` without keeping the analyses.

    Args:
        items: responses (and unreadable inputs), e.g. from :func:`mfkit.inputs.iter_inputs`.
        jobs: worker processes; 1 analyzes in this process.  Results are identical for any value.
        chunk: documents per worker task.

    Memory stays bounded by the aggregates plus ``2 * jobs`` chunks in flight.
    """
    builder = CorpusBuilder()

    def fold(batch: list[Response | InputError], summaries: list[DocSummary]) -> None:
        it = iter(summaries)
        for item in batch:  # input order, whatever process made the summary
            if isinstance(item, InputError):
                builder.add_unreadable(getattr(item, "source", "?"), item.code, item.message)
            else:
                builder.add(next(it))

    if jobs <= 1:
        for batch in _chunks(items, chunk):
            fold(batch, _summaries([r for r in batch if isinstance(r, Response)]))
        return builder.result()
    pending: deque[tuple[list, Future]] = deque()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for batch in _chunks(items, chunk):
            pending.append((batch, pool.submit(_summaries, [r for r in batch if isinstance(r, Response)])))
            if len(pending) >= 2 * jobs:
                done_batch, fut = pending.popleft()
                fold(done_batch, fut.result())
        while pending:
            done_batch, fut = pending.popleft()
            fold(done_batch, fut.result())
    return builder.result()


def corpus(*paths: str, jobs: int = 1, max_size: int = DEFAULT_MAX_SIZE) -> Corpus:
    """Read many documents together: one graph, shared bases, reused blobs, keys, tags.

    Args:
        paths: files or folders (read recursively, in sorted order).
        jobs: worker processes (``1``: in this process).

    Returns:
        The :class:`Corpus`; unreadable inputs are listed in ``.unreadable``, not raised.
    """
    if jobs < 1:
        raise UsageError(f"jobs must be at least 1, not {jobs}", code="usage.jobs")
    return corpus_from(iter_inputs([str(p) for p in paths], max_size=max_size), jobs=jobs)


_MANIFEST_KINDS = ("schema1-signed", "schema1-unsigned", "schema2", "oci-manifest", "manifest-list", "oci-index")


def load_one(path: str, *, max_size: int = DEFAULT_MAX_SIZE) -> Analysis:
    """The single manifest held by ``path`` (a file, a capture sidecar, or a transcript with one manifest).

    Raises:
        InputError: unreadable.
        UsageError: no manifest, or several (name a single capture file instead).
    """
    found = []
    for item in iter_inputs([path], max_size=max_size):
        if isinstance(item, InputError):
            raise item
        a = analyze(item)
        if a.kind in _MANIFEST_KINDS:
            found.append(a)
    if len(found) != 1:
        names = ", ".join(a.source for a in found[:5])
        raise UsageError(f"{path}: holds {len(found)} manifests{': ' + names if names else ''}; "
                         "diff compares exactly one with one", code="usage.diff-input",
                         hint="name one capture sidecar (*.meta.json) or one manifest file per side")
    return found[0]


def diff(a: str, b: str) -> DiffResult:
    """Compare two captures of the same reference (see :class:`DiffResult` for the verdicts).

    Raises:
        InputError, UsageError: see :func:`load_one`.
    """
    return diff_analyses(load_one(a), load_one(b))


def report_items(paths: Iterable[str], *, config: str | None = None, max_size: int = DEFAULT_MAX_SIZE
                 ) -> tuple[list[tuple[str, Analysis, History | None]], list[InputError]]:
    """Every document under ``paths`` with its history (None for kinds without one), for reports."""
    return _attach(paths, config, max_size)
