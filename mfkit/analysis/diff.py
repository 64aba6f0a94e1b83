"""What changed between two captures of the same reference.

A registry that stores schema 1 payloads re-signs them at every GET (spec §1.13): the same
payload digest with a different signature and time is "re-signed, same payload"; a different
payload digest is "a different image".

"Re-signed" is only said of two documents that both verify and carry nothing unsigned: a
side whose signature is invalid, or that holds content outside the signed payload
(``jws.unsigned-content``, ``jws.unsigned-member``, ``jws.outer-differs``,
``jws.payload-unrecoverable``), gets its own verdict, and so does a signature block that
changed while the key and time stayed the same (not what a registry's re-signing does).
Pure.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .document import Analysis

__all__ = ["DiffResult", "diff_analyses", "signature_verdict", "side_problems", "MAX_DIFF_LINES", "VERDICTS",
           "UNSIGNED_CONTENT_CODES"]

MAX_DIFF_LINES = 400  # unified diff lines kept in the result
MAX_LINE = 300  # characters kept per diff line

# Error findings that mean a reader of the whole document sees something the signature does not cover.
UNSIGNED_CONTENT_CODES = ("jws.unsigned-content", "jws.unsigned-member", "jws.outer-differs",
                          "jws.payload-unrecoverable")

# verdict -> (what it means, exit 0 of ``mfkit diff``)
VERDICTS: dict[str, tuple[str, bool]] = {
    "identical": ("identical bytes", True),
    "re-signed": ("RE-SIGNED, SAME PAYLOAD (a registry re-signs schema 1 at every GET)", True),
    "same-payload": ("same payload digest", True),
    "identical-unverified": ("identical bytes, but the document does not verify or carries unsigned content", False),
    "same-payload-unverified": ("same signed payload, but {sides} {does} NOT VERIFY", False),
    "same-payload-unsigned-content": ("same signed payload, but {sides} {carries} UNSIGNED CONTENT", False),
    "same-payload-envelope-altered": ("same signed payload, same key and time, but DIFFERENT SIGNATURE BYTES "
                                      "(not a registry re-signing: the signature block was altered)", False),
    "different-image": ("A DIFFERENT IMAGE (payload digests differ)", False),
}


def signature_verdict(a: Analysis) -> str:
    """``VERIFIED`` / ``NOT VERIFIED`` / ``unsigned`` / ``no signature``, plus ``unsigned content present``
    and the trust decision when there is one."""
    v = {True: "VERIFIED", False: "NOT VERIFIED"}.get(a.verified,  # type: ignore[arg-type]
                                                       "unsigned" if a.kind.startswith("schema1") else "no signature")
    codes = sorted({f.code for f in a.findings if f.severity == "error" and f.code in UNSIGNED_CONTENT_CODES})
    if codes:
        v += f"; unsigned content present ({', '.join(codes)})"
    if a.trusted is not None:
        v += "; TRUSTED" if a.trusted else "; NOT TRUSTED"
    return v


def side_problems(label: str, a: Analysis) -> tuple[list[str], list[str]]:
    """``(verification problems, unsigned-content problems)`` of one side, in words."""
    unverified: list[str] = []
    if a.verified is False:
        bad = [f"signature {s.index}: {s.error or 'invalid'}" for s in a.signatures if not s.valid]
        unverified.append(f"{label} does not verify" + (f" ({'; '.join(bad)})" if bad else " (no valid signature)"))
    unsigned = sorted({f.code for f in a.findings if f.severity == "error" and f.code in UNSIGNED_CONTENT_CODES})
    content = [f"{label} carries unsigned content ({', '.join(unsigned)})"] if unsigned else []
    return unverified, content


@dataclass(frozen=True, slots=True)
class DiffResult:
    """The comparison of document ``a`` with document ``b``.

    Attributes:
        a, b: the input labels.
        verdict: ``identical`` (same bytes), ``re-signed`` (same payload, different envelope, both
            sides signed and verify), ``same-payload`` (same registry digest, not both signed),
            ``identical-unverified``, ``same-payload-unverified`` (a side does not verify),
            ``same-payload-unsigned-content`` (a side carries content its signature does not cover),
            ``same-payload-envelope-altered`` (same key and time, different signature bytes) or
            ``different-image``; see :data:`VERDICTS`.
        verdict_a, verdict_b: each side's signature verdict (see :func:`signature_verdict`).
        problems: why a same-payload verdict is not clean, in words.
        flagged: the sides (``A``, ``B``) the verdict is about.
        digest_a, digest_b: registry digests.
        body_a, body_b: sha256 of the bytes as saved.
        payload_identical: the signed payloads (or bodies when unsigned) are byte-identical.
        payload_diff: unified diff of the payload text, cut at :data:`MAX_DIFF_LINES`.
        payload_diff_truncated: the diff was cut.
        keys_a, keys_b: signer key ids, sorted.
        times_a, times_b: signature ``time`` values, sorted.
        layers_added, layers_removed: blob digests (multiset difference), sorted.
        history_added, history_removed, history_changed: step descriptions, sorted.
    """

    a: str
    b: str
    verdict: str
    digest_a: str | None
    digest_b: str | None
    body_a: str
    body_b: str
    payload_identical: bool
    payload_diff: tuple[str, ...]
    payload_diff_truncated: bool
    keys_a: tuple[str, ...]
    keys_b: tuple[str, ...]
    times_a: tuple[str, ...]
    times_b: tuple[str, ...]
    layers_added: tuple[str, ...]
    layers_removed: tuple[str, ...]
    history_added: tuple[str, ...]
    history_removed: tuple[str, ...]
    history_changed: tuple[str, ...]
    verdict_a: str = ""
    verdict_b: str = ""
    problems: tuple[str, ...] = ()
    flagged: tuple[str, ...] = ()

    @property
    def same_payload(self) -> bool:
        """The two documents carry the same payload digest (whether or not they verify)."""
        return self.verdict != "different-image"

    @property
    def ok(self) -> bool:
        """Same image, both sides verify and carry nothing unsigned (exit code 0 of ``mfkit diff``)."""
        return VERDICTS[self.verdict][1]

    @property
    def meaning(self) -> str:
        """The verdict in words."""
        two = len(self.flagged) > 1
        return VERDICTS[self.verdict][0].format(sides=" and ".join(self.flagged) or "a side",
                                                does="do" if two else "does", carries="carry" if two else "carries")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"a": self.a, "b": self.b, "verdict": self.verdict, "same_payload": self.same_payload,
                "ok": self.ok, "problems": list(self.problems), "meaning": self.meaning,
                "verified": {"a": self.verdict_a, "b": self.verdict_b},
                "digest": {"a": self.digest_a, "b": self.digest_b},
                "body_sha256": {"a": self.body_a, "b": self.body_b},
                "payload_identical": self.payload_identical, "payload_diff": list(self.payload_diff),
                "payload_diff_truncated": self.payload_diff_truncated,
                "keys": {"a": list(self.keys_a), "b": list(self.keys_b)},
                "signature_times": {"a": list(self.times_a), "b": list(self.times_b)},
                "layers": {"added": list(self.layers_added), "removed": list(self.layers_removed)},
                "history": {"added": list(self.history_added), "removed": list(self.history_removed),
                            "changed": list(self.history_changed)}}

    def _repr_html_(self) -> str:
        from ..report_forensic import diff_html

        return diff_html(self)


def _payload(a: Analysis) -> bytes:
    return a.payload if a.payload is not None else a.response.body


def _blobs(a: Analysis) -> list[str]:
    if a.manifest is not None:
        return [e.blob_sum for e in a.manifest.entries if e.blob_sum is not None]
    return [d.digest for d in a.descriptors if d.digest]


def _steps(a: Analysis) -> dict[str, tuple]:
    """Steps keyed by v1 id (schema 1) or by their content (other kinds)."""
    out: dict[str, tuple] = {}
    if a.manifest is not None:
        for e in a.manifest.entries:
            key = e.id or f"#{e.index}"
            out[key] = (e.created, e.created_by, e.blob_sum, e.throwaway, e.parent, repr(sorted(e.data.items())))
    return out


def _describe(key: str, step: tuple) -> str:
    return f"{key[:12]} {step[0] or '-'} {(step[1] or '')[:80]}"


def diff_analyses(a: Analysis, b: Analysis) -> DiffResult:
    """Compare two analyzed documents (normally two captures of one tag).

    Returns:
        A :class:`DiffResult`; never raises on bad content.
    """
    pa, pb = _payload(a), _payload(b)
    same_bytes = a.response.body == b.response.body
    payload_identical = pa == pb
    flagged: tuple[str, ...] = ()
    ua, ca_ = side_problems("A", a)
    ub, cb_ = side_problems("B", b)
    problems = ua + ca_ + ub + cb_ if not same_bytes else ([p.replace("A ", "the document ", 1) for p in ua + ca_])
    if same_bytes:
        verdict = "identical-unverified" if problems else "identical"
    elif payload_identical or (a.digest is not None and a.digest == b.digest):
        if ua or ub:
            verdict = "same-payload-unverified"
            flagged = tuple(side for side, bad in (("A", ua), ("B", ub)) if bad)
        elif ca_ or cb_:
            verdict = "same-payload-unsigned-content"
            flagged = tuple(side for side, bad in (("A", ca_), ("B", cb_)) if bad)
        elif a.signed and b.signed:
            verdict = "re-signed"
            ka = sorted((s.key_id or "", s.time or "") for s in a.signatures)
            if ka == sorted((s.key_id or "", s.time or "") for s in b.signatures):
                # libtrust stamps the signing time: a registry that re-signs gives a new time.
                verdict = "same-payload-envelope-altered"
                problems.append("same signer keys and signature times as A, but different signature bytes")
        else:
            verdict = "same-payload"
    else:
        verdict = "different-image"
    lines: list[str] = []
    truncated = False
    if not payload_identical:
        ta = pa.decode("utf-8", "replace").splitlines()
        tb = pb.decode("utf-8", "replace").splitlines()
        for n, line in enumerate(difflib.unified_diff(ta, tb, fromfile=a.source, tofile=b.source, lineterm="")):
            if n >= MAX_DIFF_LINES:
                truncated = True
                break
            lines.append(line if len(line) <= MAX_LINE else line[:MAX_LINE] + "…")
    ca, cb = Counter(_blobs(a)), Counter(_blobs(b))
    sa, sb = _steps(a), _steps(b)
    changed = sorted(_describe(k, sb[k]) for k in sa.keys() & sb.keys() if sa[k] != sb[k])
    return DiffResult(
        a=a.source, b=b.source, verdict=verdict, digest_a=a.digest, digest_b=b.digest,
        body_a=a.digests.body, body_b=b.digests.body, payload_identical=payload_identical,
        payload_diff=tuple(lines), payload_diff_truncated=truncated,
        keys_a=tuple(sorted({s.key_id for s in a.signatures if s.key_id})),
        keys_b=tuple(sorted({s.key_id for s in b.signatures if s.key_id})),
        times_a=tuple(sorted(s.time for s in a.signatures if s.time)),
        times_b=tuple(sorted(s.time for s in b.signatures if s.time)),
        layers_added=tuple(sorted((cb - ca).elements())), layers_removed=tuple(sorted((ca - cb).elements())),
        history_added=tuple(sorted(_describe(k, sb[k]) for k in sb.keys() - sa.keys())),
        history_removed=tuple(sorted(_describe(k, sa[k]) for k in sa.keys() - sb.keys())),
        history_changed=tuple(changed), verdict_a=signature_verdict(a), verdict_b=signature_verdict(b),
        problems=tuple(problems), flagged=flagged)
