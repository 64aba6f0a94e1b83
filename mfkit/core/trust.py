"""Trust decisions, kept apart from validity (spec §1.9, §1.10).

A valid signature proves only that the key embedded in the document signed the payload.
Whether that key is trusted comes from the user: pinned key IDs (``--trust-key``,
``--trust-keys``) or roots for x5c chains (``--trust-ca``).  With no trust input nothing
is ever trusted.  Chains are checked the way libtrust's VerifyChains does (Go
``x509.Verify`` with default options: no name check, ExtKeyUsage serverAuth or any, or no
EKU at all), at the signature's ``time`` and at ``now``; the decision uses the signing time
and both results are reported.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

from .keys import KeyError_, describe_key, key_from_jwk
from .timefmt import parse_datetime as _parse_time

__all__ = ["TrustPolicy", "TrustDecision", "ChainCheck", "KEY_ID", "parse_trust_keys", "parse_roots", "decide"]


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """What the user trusts.

    Attributes:
        key_ids: pinned libtrust key IDs.
        roots: root certificates for x5c chains.
    """

    key_ids: frozenset[str] = frozenset()
    roots: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        # A bare string would be iterated character by character: refuse it.
        if isinstance(self.key_ids, (str, bytes)) or not all(isinstance(k, str) for k in self.key_ids):
            raise TypeError("key_ids must be a set of key ID strings, e.g. frozenset({'ABCD:...'})")
        if not all(isinstance(c, x509.Certificate) for c in self.roots):
            raise TypeError("roots must be cryptography x509.Certificate objects")
        object.__setattr__(self, "key_ids", frozenset(self.key_ids))
        object.__setattr__(self, "roots", tuple(self.roots))

    @property
    def empty(self) -> bool:
        """No trust input at all: nothing can be trusted."""
        return not self.key_ids and not self.roots


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """An x5c chain checked against the roots at one moment."""

    at: str
    ok: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"at": self.at, "ok": self.ok, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class TrustDecision:
    """The trust verdict on one signature.

    Attributes:
        status: ``trusted``, ``untrusted`` or ``unknown`` (no trust input).
        reason: why, in plain words.
        chain: chain checks at the signing time and now (x5c signatures with roots given).
    """

    status: str
    reason: str
    chain: tuple[ChainCheck, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"status": self.status, "reason": self.reason, "chain": [c.to_dict() for c in self.chain]}


def parse_trust_keys(data: bytes) -> frozenset[str]:
    """Key IDs from a JWK set (``{"keys": [...]}``), a single JWK, or PEM public keys/certificates.

    Raises:
        ValueError: nothing usable in ``data``.
    """
    ids: set[str] = set()
    text = data.strip()
    if text.startswith(b"{"):
        try:
            obj = json.loads(text)
        except ValueError:
            raise ValueError("not a JSON JWK or JWK set") from None
        jwks = obj.get("keys") if isinstance(obj, dict) and "keys" in obj else [obj]
        for jwk in jwks if isinstance(jwks, list) else []:
            try:
                ids.add(key_from_jwk({k: v for k, v in jwk.items() if k != "kid"}).key_id)
            except (KeyError_, AttributeError) as exc:
                raise ValueError(f"unusable JWK: {exc}") from None
    else:
        for block in _pem_blocks(data):
            first = block.split(b"\n", 1)[0]
            if b"PRIVATE" in first:
                raise ValueError("this is a private key: give the public key or certificate instead")
            try:
                if b"CERTIFICATE" in first:
                    key = x509.load_pem_x509_certificate(block).public_key()
                else:
                    key = serialization.load_pem_public_key(block)
            except ValueError:
                raise ValueError(f"unreadable PEM block {first.decode(errors='replace').strip()}") from None
            try:
                ids.add(describe_key(key).key_id)
            except KeyError_ as exc:
                raise ValueError(str(exc)) from None
    if not ids:
        raise ValueError("no JWK or PEM public key found")
    return frozenset(ids)


KEY_ID = re.compile(r"[A-Z2-7]{4}(?::[A-Z2-7]{4}){11}")


def parse_roots(data: bytes) -> tuple[x509.Certificate, ...]:
    """Root certificates from PEM bytes.

    Raises:
        ValueError: no certificate in ``data``.
    """
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError("no PEM certificate (-----BEGIN CERTIFICATE-----) found")
    try:
        certs = tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise ValueError("a PEM certificate block could not be read") from None
    return certs


def _pem_blocks(data: bytes) -> list[bytes]:
    out, cur = [], []
    for line in data.splitlines(keepends=True):
        if line.startswith(b"-----BEGIN"):
            cur = [line]
        elif cur:
            cur.append(line)
            if line.startswith(b"-----END"):
                out.append(b"".join(cur))
                cur = []
    return out


def _check_chain(certs: tuple, roots: tuple[x509.Certificate, ...], when: dt.datetime) -> ChainCheck:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    # CA certificates need BasicConstraints; everything else is permitted, as in Go (spec §1.10).
    ca_policy = ExtensionPolicy.permit_all().require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
    verifier = (PolicyBuilder().store(Store(list(roots))).time(when)
                .extension_policies(ca_policy=ca_policy, ee_policy=ExtensionPolicy.permit_all())
                .build_client_verifier())
    leaf, inter = certs[0], list(certs[1:])
    try:
        verifier.verify(leaf, inter)
    except VerificationError as exc:
        return ChainCheck(stamp, False, _plain(str(exc)))
    # Go's default KeyUsages is ServerAuth: a leaf EKU must allow it, or be absent (spec §1.10).
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None and ExtendedKeyUsageOID.SERVER_AUTH not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
        return ChainCheck(stamp, False, "incompatible key usage: the leaf's extended key usage allows neither "
                                        "serverAuth nor any (libtrust VerifyChains refuses it)")
    return ChainCheck(stamp, True)


def _plain(msg: str) -> str:
    low = msg.lower()
    if "expired" in low or "not yet valid" in low or "validity" in low:
        return "a certificate of the chain is not valid at that time: " + msg
    if "issuer" in low or "candidates exhausted" in low:
        return "no path from the leaf to a supplied root: " + msg
    return msg


def decide(sig: Any, policy: TrustPolicy, now: dt.datetime | None) -> TrustDecision:
    """Decide trust for one :class:`~mfkit.core.jws.SignatureResult`.

    Args:
        sig: the signature result (validity already decided).
        policy: the user's trust input.
        now: the reference "now", captured once by the caller (None: check the chain at the
            signing time only).
    """
    if policy.empty:
        return TrustDecision("unknown", "no trust input given (--trust-key, --trust-keys or --trust-ca)")
    if not sig.valid:
        return TrustDecision("untrusted", "the signature is not valid")
    if sig.key_id in policy.key_ids:
        return TrustDecision("trusted", f"key {sig.key_id} is pinned")
    if sig.key_source == "x5c" and policy.roots and sig.certificates:
        signed_at = _parse_time(sig.time)
        checks = []
        if signed_at is not None:
            checks.append(_check_chain(sig.certificates, policy.roots, signed_at))
        if now is not None:
            checks.append(_check_chain(sig.certificates, policy.roots, now))
        if signed_at is None:
            return TrustDecision("untrusted", "the signature has no usable time to check its chain at", tuple(checks))
        first = checks[0]
        if first.ok:
            later = "" if checks[-1].ok else f" (not valid now: {checks[-1].reason})"
            return TrustDecision("trusted", f"x5c chain leads to a supplied root at the signing time{later}", tuple(checks))
        return TrustDecision("untrusted", f"x5c chain rejected at the signing time: {first.reason}", tuple(checks))
    if sig.key_source == "x5c":
        return TrustDecision("untrusted", f"key {sig.key_id} is not pinned and no root was given for its x5c chain")
    return TrustDecision("untrusted", f"key {sig.key_id} is not pinned")
