"""libtrust "pretty" JWS: rebuild the signed payload from bytes and verify every signature.

Steps, numbered as in spec §1.14 and referred to by the same numbers below:
  (1) decode each ``protected`` header strictly; all must agree on formatLength/formatTail;
      rebuild ``payload = raw[0:formatLength] + formatTail`` from BYTES (spec §1.3);
  (2) pick the key: ``x5c[0]`` when x5c is a non-empty array, else ``jwk`` (kid checked);
  (3) check ``alg`` against the key (spec §1.7);
  (4) signing input = protected as written + "." + base64url(payload) (spec §1.4);
  (5) EC: raw r||s of exactly twice the curve size; RSA: PKCS#1 v1.5, modulus length.
Nothing here decides trust: a valid signature only proves the embedded key signed it (§1.9).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .b64 import B64Error, b64url_decode, b64url_encode
from .findings import Finding
from .jsonstrict import JSONError, go_fold, loads_strict
from .keys import KeyError_, KeyInfo, key_from_jwk, key_from_x5c

__all__ = ["SignatureResult", "Envelope", "open_envelope", "open_envelope_fast", "signed_payload", "find_member"]

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_EC_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_EC_SIZE = {"P-256": 32, "P-384": 48, "P-521": 66}
_EC_ORDER = {
    "P-256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "P-384": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
    "P-521": int(
        "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
        16,
    ),
}
_SIG_KEY = re.compile(rb'"signatures"[ \t\r\n]*:[ \t\r\n]*')
_COMMA = re.compile(rb"[ \t\r\n]*,[ \t\r\n]*")
_TAIL_OK = re.compile(rb"[ \t\r\n]*}[ \t\r\n]*")
_JSON_WS = b" \t\r\n"
_PLAIN_FIELDS = frozenset({"header", "signature", "protected", "jwk", "alg", "x5c"})


@dataclass(slots=True, eq=False)
class SignatureResult:
    """The verdict on one signature, with everything a reviewer needs to see (read-only by convention).

    Attributes:
        index: position in the ``signatures`` array.
        alg: the ``alg`` header (unprotected).
        key_source: ``x5c`` or ``jwk`` (the key actually used), or None.
        key_id: libtrust key ID of the key actually used.
        jwk_kid: the ``kid`` a ``jwk`` header claims (shown even when x5c wins).
        key_type: ``EC P-256``, ``RSA 2048``...
        bits: curve or modulus size.
        time: the protected ``time`` claim (never checked by libtrust).
        valid: the signature verifies over the rebuilt payload with that key.
        error: why not, in plain words.
        x5c_len: number of certificates in ``x5c``.
        high_s: ECDSA s above n/2 (malleable form; informational).
        anomalies: tolerated encoding oddities.
        certificates: the parsed ``x5c`` chain (for trust decisions), not serialized.
    """

    index: int
    alg: str | None = None
    key_source: str | None = None
    key_id: str | None = None
    jwk_kid: str | None = None
    key_type: str | None = None
    bits: int | None = None
    time: str | None = None
    valid: bool = False
    error: str | None = None
    x5c_len: int = 0
    high_s: bool | None = None
    anomalies: tuple[str, ...] = ()
    jwk_present: bool = False
    certificates: tuple = field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``certificates`` left out)."""
        return {
            "index": self.index,
            "alg": self.alg,
            "key_source": self.key_source,
            "key_id": self.key_id,
            "jwk_kid": self.jwk_kid,
            "key_type": self.key_type,
            "bits": self.bits,
            "time": self.time,
            "valid": self.valid,
            "error": self.error,
            "x5c_len": self.x5c_len,
            "high_s": self.high_s,
            "anomalies": list(self.anomalies),
        }


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the signature block of one signed document says.

    Attributes:
        payload: the rebuilt signed bytes, or None when they cannot be rebuilt.
        format_length: the agreed formatLength.
        format_tail: the agreed formatTail bytes.
        signatures: one result per array element.
        error: why the payload could not be rebuilt, if so.
        findings: observations about the envelope (unsigned content, odd tails...).
        signatures_offset: byte offset of the ``"signatures"`` member.
    """

    payload: bytes | None
    format_length: int | None
    format_tail: bytes | None
    signatures: tuple[SignatureResult, ...]
    error: str | None
    findings: tuple[Finding, ...]
    signatures_offset: int | None = None

    @property
    def verified(self) -> bool:
        """True only with at least one signature and every one valid (spec §1.3 step 6)."""
        return bool(self.signatures) and all(s.valid for s in self.signatures)


def find_member(obj: dict, name: str) -> Any:
    """Value of ``name`` in ``obj`` as Go would decode it into a struct field.

    Go matches field names case-insensitively with Unicode folding and keeps the last
    matching key (spec §2.3).
    """
    if obj.keys() <= _PLAIN_FIELDS:  # the usual case: nothing for Go to fold
        return obj.get(name)
    found = None
    for key, value in obj.items():
        if go_fold(key) == name.lower():
            found = value
    return found


def _protected(sig: dict) -> tuple[str | None, dict | None, str | None, list[str]]:
    raw = find_member(sig, "protected")
    if not isinstance(raw, str):
        return None, None, "protected header missing or not a string", []
    try:
        data, odd = b64url_decode(raw)
    except B64Error as exc:
        return raw, None, f"protected header: {exc}", []
    try:
        hdr, _ = loads_strict(data)
    except JSONError as exc:
        return raw, None, f"protected header is not JSON: {exc}", []
    if not isinstance(hdr, dict):
        return raw, None, "protected header is not a JSON object", []
    return raw, hdr, None, [f"protected {a}" for a in odd]


def _format_params(hdr: dict) -> tuple[int | None, bytes | None, str | None, list[str]]:
    notes: list[str] = []
    fl = hdr.get("formatLength")
    if isinstance(fl, bool) or not isinstance(fl, (int, float)):
        return None, None, "formatLength missing or not a number", notes
    if isinstance(fl, float):
        if fl != fl or fl in (float("inf"), float("-inf")) or not fl.is_integer():
            # Go truncates 6122.9 to 6122 (spec §1.3 step 3); mfkit refuses it.
            return None, None, f"formatLength {fl!r} is not an integer", notes
        notes.append("formatLength written as a decimal")
        fl = int(fl)
    tail = hdr.get("formatTail")
    if not isinstance(tail, str):
        return fl, None, "formatTail missing or not a string", notes
    try:
        tail_bytes, odd = b64url_decode(tail)
    except B64Error as exc:
        return fl, None, f"formatTail: {exc}", notes
    notes.extend(f"formatTail {a}" for a in odd)
    return fl, tail_bytes, None, notes


def open_envelope_fast(raw: bytes, *, verify: bool = True) -> Envelope | None:
    """The envelope of a document laid out as libtrust writes it, without parsing it whole.

    Applies only when the bytes are exactly ``raw[:formatLength]``, a comma, the
    ``signatures`` member as the last member, and ``}``: then the outer document is the
    payload plus that one member, and nothing outside the signed range can differ from it.
    Returns None otherwise (the caller parses the whole document and uses
    :func:`open_envelope`).  The caller must still check that the payload is a JSON object
    with at least one member.
    """
    last = None
    for last in _SIG_KEY.finditer(raw):
        pass
    end = len(raw.rstrip(_JSON_WS)) - 1
    if last is None or end < last.end() or raw[end : end + 1] != b"}":
        return None
    try:
        sigs, anomalies = loads_strict(raw[last.end() : end])
    except JSONError:
        return None
    if anomalies or not isinstance(sigs, list) or not sigs:
        return None
    env = _open(raw, sigs, last.start(), verify)
    fl = env.format_length
    if env.payload is None or fl is None:
        return None
    comma = _COMMA.match(raw, fl)
    if comma is None or comma.end() != last.start():
        return None
    return env


def open_envelope(raw: bytes, outer: dict, *, verify: bool = True) -> Envelope:
    """Rebuild the payload of a signed schema 1 document and verify each signature.

    Args:
        raw: the exact bytes of the outer document.
        outer: ``raw`` parsed (strictly); used only to reach the ``signatures`` member.
        verify: False rebuilds the payload only (no key, no signature results).

    Returns:
        An :class:`Envelope`; it never raises for bad signatures or bad headers.
    """
    last = None
    for last in _SIG_KEY.finditer(raw):
        pass
    return _open(raw, outer.get("signatures"), last.start() if last else None, verify)


def signed_payload(raw: bytes) -> bytes | None:
    """The bytes a registry hashes for a signed schema 1 document, without verifying anything.

    Returns None when the payload cannot be rebuilt (spec §1.3).
    """
    env = open_envelope_fast(raw, verify=False)
    if env is None:
        try:
            outer, _ = loads_strict(raw)
        except JSONError:
            return None
        if not isinstance(outer, dict):
            return None
        env = open_envelope(raw, outer, verify=False)
    return env.payload


def _open(raw: bytes, sigs: Any, sig_offset: int | None, verify: bool = True) -> Envelope:
    if not isinstance(sigs, list):
        what = "null" if sigs is None else type(sigs).__name__
        msg = f"signatures is {what}, not an array"
        return Envelope(None, None, None, (), msg,
                        (Finding("jws.signatures-type", "error", msg, "$.signatures"),))
    if not sigs:
        # libtrust "verifies" zero signatures with zero keys (spec §1.3 step 6): never verified here.
        return Envelope(None, None, None, (), "no signatures",
                        (Finding("jws.no-signatures", "error", "the signatures array is empty: nothing is signed", "$.signatures"),))

    # (1) protected headers and format parameters
    parsed: list[tuple[str | None, dict | None, str | None, list[str]]] = []
    lengths: set[int] = set()
    tails: set[bytes] = set()
    for sig in sigs:
        if not isinstance(sig, dict):
            parsed.append((None, None, "signature is not an object", []))
            continue
        raw_p, hdr, err, notes = _protected(sig)
        if hdr is not None:
            fl, tail, ferr, fnotes = _format_params(hdr)
            notes = notes + fnotes
            if ferr:
                err = ferr
            else:
                lengths.add(fl)  # type: ignore[arg-type]
                tails.add(tail)  # type: ignore[arg-type]
        parsed.append((raw_p, hdr, err, notes))

    findings: list[Finding] = []
    env_error = None
    fl = tail = payload = None
    if len(lengths) > 1:
        env_error = f"signatures disagree on formatLength: {sorted(lengths)}"
    elif len(tails) > 1:
        env_error = "signatures disagree on formatTail"
    elif not lengths:
        env_error = "no signature carries a usable formatLength/formatTail"
    else:
        fl, tail = next(iter(lengths)), next(iter(tails))
        if fl <= 0:
            env_error = f"formatLength {fl} is not positive"
        elif fl > len(raw):
            env_error = f"formatLength {fl} is beyond the end of the document ({len(raw)} bytes)"
        else:
            payload = raw[:fl] + tail
    if env_error:
        findings.append(Finding("jws.payload-unrecoverable", "error", env_error, "$.signatures[*].protected"))
    else:
        findings.extend(_layout_findings(raw, fl, tail, sig_offset))  # type: ignore[arg-type]
        layout = _layout_deviations(raw, fl, payload, sigs)  # type: ignore[arg-type]
        if layout:
            findings.append(Finding("jws.non-canonical-layout", "info",
                                    "not laid out the way libtrust writes signed documents: " + "; ".join(layout),
                                    f"bytes {fl}..{len(raw)}"))

    if not verify:
        return Envelope(payload, fl, tail, (), env_error, tuple(findings), sig_offset)
    b64_payload = b64url_encode(payload) if payload is not None else b""
    results = []
    for i, sig in enumerate(sigs):
        raw_p, hdr, err, notes = parsed[i]
        if err is None and payload is None:
            err = f"payload could not be rebuilt: {env_error}"
        results.append(_check(i, sig if isinstance(sig, dict) else {}, raw_p, hdr, err, notes, b64_payload))
    for r in results:
        findings.extend(_signature_findings(r))
    return Envelope(payload, fl, tail, tuple(results), env_error, tuple(findings), sig_offset)


# libtrust marshals the protected header from a Go map: sorted keys, no spaces (spec §1.2).
# (Compare decoded bytes: the 22-character base64url prefix in spec §1.2 ends in "i", real headers in "j".)
_LIBTRUST_PROTECTED = re.compile(rb'\{"formatLength":\d+,"formatTail":"[A-Za-z0-9_-]*","time":"[^"]*"\}')


def _layout_deviations(raw: bytes, fl: int, payload: bytes, sigs: list) -> list[str]:
    """Differences from libtrust's PrettySignature layout (spec §1.1); a producer fingerprint."""
    out = []
    rest = raw[fl:]
    raw = raw.rstrip(b"\r\n")  # a file saved with a final newline is not a layout change
    if payload.startswith(b"{\n"):
        q = payload.find(b'"')
        indent = payload[2:q] if q > 2 else b""
        if not rest.startswith(b",\n" + indent + b'"signatures": [') or not raw.endswith(b"\n" + indent + b"]\n}"):
            out.append(f"signatures block is not indented like the payload ({len(indent)} spaces)")
    elif not rest.startswith(b',"signatures":[') or not raw.endswith(b"]}"):
        out.append("compact payload but the signatures block is not compact")
    keys = []
    for sig in sigs:
        if not isinstance(sig, dict):
            continue
        prot = sig.get("protected")
        try:
            decoded = b64url_decode(prot)[0] if isinstance(prot, str) else b""
        except B64Error:
            decoded = b""
        if not _LIBTRUST_PROTECTED.fullmatch(decoded):
            out.append("protected header not written by libtrust (member order or spacing)")
            break
    for sig in sigs:
        hdr = sig.get("header") if isinstance(sig, dict) else None
        jwk = hdr.get("jwk") if isinstance(hdr, dict) else None
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        if isinstance(kid, str):
            keys.append((kid, str(sig.get("signature"))))
    if len(keys) == len(sigs) and keys != sorted(keys):
        out.append("signatures not sorted by key ID")
    return out


def _signature_findings(r: SignatureResult) -> list[Finding]:
    where = f"$.signatures[{r.index}]"
    out = []
    if not r.valid:
        out.append(Finding("jws.signature-invalid", "error", f"signature {r.index} is not valid: {r.error}", where))
    if r.x5c_len and r.jwk_present:
        # libtrust takes x5c and ignores jwk, with no consistency check (spec §1.6).
        out.append(Finding("jws.x5c-and-jwk", "warning",
                           f"signature {r.index} carries both x5c and jwk: the x5c leaf ({r.key_id}) is the key that "
                           f"counts; a naive reader would show the jwk kid {r.jwk_kid}", where + ".header"))
    for a in r.anomalies:
        if a == "jwk carries a private key member":
            continue
        code = "jws.b64-padded" if a.endswith("padded") else "jws.b64-non-canonical" if a.endswith("non-canonical") else "jws.encoding"
        why = " base64url (libtrust accepts it, so one signature has several spellings)" if code != "jws.encoding" else ""
        out.append(Finding(code, "info", f"signature {r.index}: {a}{why}", where))
    if r.key_type and r.key_type.startswith("RSA") and (r.bits or 0) < 2048:
        out.append(Finding("jws.weak-key", "warning",
                           f"signature {r.index} uses a {r.bits}-bit RSA key: too short to rule out forgery", where))
    if "jwk carries a private key member" in r.anomalies:
        out.append(Finding("jws.jwk-private-member", "warning",
                           f"signature {r.index}: the jwk carries a private key member: that key is compromised", where))
    if r.high_s:
        out.append(Finding("jws.high-s", "info",
                           f"signature {r.index} uses the high-s ECDSA form: valid, but anyone can derive a second valid "
                           "signature string, so identify signed content by payload digest and key, not signature bytes",
                           where + ".signature"))
    return out


def _layout_findings(raw: bytes, fl: int, tail: bytes, sig_offset: int | None) -> list[Finding]:
    out = []
    if not _TAIL_OK.fullmatch(tail):
        out.append(Finding("jws.odd-format-tail", "warning",
                           f"formatTail {tail!r} is not whitespace and a single closing brace", "protected.formatTail"))
    # Content after formatLength is not signed (spec §1.3, §2.2; moby extra_data_manifest).
    comma = _COMMA.match(raw, fl)
    start = comma.end() if comma else fl
    if sig_offset is None or sig_offset < fl:
        out.append(Finding("jws.unsigned-content", "error",
                           f"no signatures member after the signed range (byte {fl})", f"bytes {fl}..{len(raw)}"))
    elif comma is None or sig_offset != start:
        end = sig_offset
        out.append(Finding("jws.unsigned-content", "error",
                           f"{end - fl} bytes between the end of the signed range and the signatures member are not signed",
                           f"bytes {fl}..{end}"))
    return out


def _check(i: int, sig: dict, raw_p: str | None, hdr: dict | None, err: str | None,
           notes: list[str], b64_payload: bytes) -> SignatureResult:
    header = find_member(sig, "header")
    header = header if isinstance(header, dict) else {}
    alg = header.get("alg") if isinstance(header.get("alg"), str) else None
    jwk = header.get("jwk")
    jwk_kid = jwk.get("kid") if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str) else None
    x5c = header.get("x5c")
    when = hdr.get("time") if hdr and isinstance(hdr.get("time"), str) else None
    base = dict(index=i, alg=alg, jwk_kid=jwk_kid, time=when, jwk_present=jwk is not None,
                x5c_len=len(x5c) if isinstance(x5c, list) else 0)
    if err:
        return SignatureResult(error=err, anomalies=tuple(notes), **base)
    # (2) x5c wins over jwk, with no consistency check in libtrust (spec §1.6).
    certs: tuple = ()
    try:
        if isinstance(x5c, list) and x5c:
            info, chain = key_from_x5c(x5c)
            source, certs = "x5c", tuple(chain)
        elif jwk is not None:
            info, source = key_from_jwk(jwk), "jwk"
        else:
            return SignatureResult(error="missing public key (no jwk and no x5c)", anomalies=tuple(notes), **base)
    except KeyError_ as exc:
        return SignatureResult(key_source="x5c" if isinstance(x5c, list) and x5c else "jwk",
                               error=str(exc), anomalies=tuple(notes), **base)
    notes = notes + list(info.anomalies)
    base.update(key_source=source, key_id=info.key_id, key_type=info.label, bits=info.bits, certificates=certs)
    sig_text = find_member(sig, "signature")
    if not isinstance(sig_text, str):
        return SignatureResult(error="signature missing or not a string", anomalies=tuple(notes), **base)
    try:
        sig_bytes, odd = b64url_decode(sig_text)
    except B64Error as exc:
        return SignatureResult(error=f"signature: {exc}", anomalies=tuple(notes), **base)
    notes += [f"signature {a}" for a in odd]
    try:
        signing_input = raw_p.encode("ascii") + b"." + b64_payload  # type: ignore[union-attr]  (4)
    except UnicodeEncodeError:
        return SignatureResult(error="protected header is not ASCII", anomalies=tuple(notes), **base)
    error, high_s = _verify(info, alg, sig_bytes, signing_input)
    return SignatureResult(valid=error is None, error=error, high_s=high_s, anomalies=tuple(notes), **base)


def _verify(info: KeyInfo, alg: str | None, sig: bytes, data: bytes) -> tuple[str | None, bool | None]:
    # (3) alg must fit the key; (5) exact signature sizes.
    if info.kind == "EC":
        want = _EC_ALG[info.curve]  # type: ignore[index]
        if alg != want:
            return f"alg {alg!r} does not fit an {info.curve} key (needs {want})", None
        size = _EC_SIZE[info.curve]  # type: ignore[index]
        if len(sig) != 2 * size:
            return f"{alg} signature must be {2 * size} bytes (raw r||s), got {len(sig)}", None
        r, s = int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big")
        order = _EC_ORDER[info.curve]  # type: ignore[index]
        high_s = s > order // 2
        if not (0 < r < order and 0 < s < order):
            return "r or s is out of range", high_s
        try:
            info.key.verify(encode_dss_signature(r, s), data, ec.ECDSA(_HASHES[alg[2:]]()))
        except InvalidSignature:
            return "signature does not match the payload and key", high_s
        return None, high_s
    if alg not in ("RS256", "RS384", "RS512"):
        return f"alg {alg!r} is not an RSA algorithm libtrust accepts (RS256/RS384/RS512)", None
    key: rsa.RSAPublicKey = info.key
    if len(sig) != (key.key_size + 7) // 8:
        return f"RSA signature must be {(key.key_size + 7) // 8} bytes, got {len(sig)}", None
    try:
        key.verify(sig, data, padding.PKCS1v15(), _HASHES[alg[2:]]())
    except InvalidSignature:
        return "signature does not match the payload and key", None
    return None, None
