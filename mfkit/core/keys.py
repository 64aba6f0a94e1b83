"""Public keys of libtrust signatures: JWK and x5c forms, and the libtrust key ID.

Spec §1.6 (header forms), §1.11 (key ID).  Keys built from the same JWK members are
cached: verifying many manifests signed by one registry key builds that key once.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .b64 import B64Error, b64std_decode, b64url_decode

__all__ = ["KeyError_", "KeyInfo", "key_id", "key_from_jwk", "key_from_x5c", "describe_key"]

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_CURVES: dict[str, tuple[ec.EllipticCurve, int]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


class KeyError_(ValueError):  # noqa: N801 - avoid shadowing the builtin KeyError
    """A key that libtrust would refuse; the message says why."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A usable public key and what is known about it.

    Attributes:
        key: the ``cryptography`` public key.
        key_id: libtrust key ID computed from the key.
        kind: ``EC`` or ``RSA``.
        curve: ``P-256``/``P-384``/``P-521`` for EC, else None.
        bits: curve size or modulus size in bits.
        anomalies: tolerated oddities (non-canonical base64url in members...).
    """

    key: Any
    key_id: str
    kind: str
    curve: str | None
    bits: int
    anomalies: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``EC P-256`` or ``RSA 2048``."""
        return f"EC {self.curve}" if self.kind == "EC" else f"RSA {self.bits}"


def key_id(public_key: Any) -> str:
    """libtrust key ID: base32 of the first 240 bits of sha256(SPKI DER), in 12 groups of 4."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(b32[i : i + 4] for i in range(0, 48, 4))


def describe_key(public_key: Any, anomalies: tuple[str, ...] = ()) -> KeyInfo:
    """Wrap a ``cryptography`` key as :class:`KeyInfo`.

    Raises:
        KeyError_: neither ECDSA on a libtrust curve nor RSA.
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = _CURVE_NAMES.get(public_key.curve.name)
        if curve is None:
            raise KeyError_(f"unsupported EC curve {public_key.curve.name}")
        return KeyInfo(public_key, key_id(public_key), "EC", curve, public_key.curve.key_size, anomalies)
    if isinstance(public_key, rsa.RSAPublicKey):
        return KeyInfo(public_key, key_id(public_key), "RSA", None, public_key.key_size, anomalies)
    raise KeyError_(f"unsupported key type {type(public_key).__name__}")


def _member(jwk: dict, name: str, anomalies: list[str]) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise KeyError_(f"JWK member {name!r} missing or not a string")
    try:
        data, odd = b64url_decode(value)
    except B64Error as exc:
        raise KeyError_(f"JWK member {name!r}: {exc}") from None
    anomalies.extend(f"jwk.{name} {a}" for a in odd)
    return data


def key_from_jwk(jwk: Any) -> KeyInfo:
    """Build the key of a ``jwk`` header the way libtrust's UnmarshalPublicKeyJWK does.

    Enforced (spec §1.6): ``kty`` EC or RSA; EC ``crv`` one of P-256/384/521 with ``x``
    and ``y`` of exactly the curve's byte length; the point must be on the curve; RSA
    without a private exponent ``d`` and with ``e`` of at most 4 bytes; a present ``kid``
    must equal the computed key ID.

    Raises:
        KeyError_: any rule broken; the message names it.
    """
    if not isinstance(jwk, dict):
        raise KeyError_("jwk is not an object")
    return _jwk_cached(_jwk_cache_key(jwk))


def _jwk_cache_key(jwk: dict) -> tuple:
    def s(name: str) -> Any:
        v = jwk.get(name)
        return v if isinstance(v, (str, type(None))) else ("<non-string>", repr(v)[:64])

    return (s("kty"), s("crv"), s("x"), s("y"), s("n"), s("e"), s("kid"), "d" in jwk)


@lru_cache(maxsize=1024)
def _jwk_cached(ck: tuple) -> KeyInfo:
    kty, crv, x, y, n, e, kid, has_d = ck
    jwk = {k: v for k, v in zip(("kty", "crv", "x", "y", "n", "e", "kid"), ck[:7]) if v is not None}
    anomalies: list[str] = []
    if kty == "EC":
        if crv not in _CURVES:
            raise KeyError_(f"unsupported EC curve {crv!r}")
        curve, size = _CURVES[crv]
        xb, yb = _member(jwk, "x", anomalies), _member(jwk, "y", anomalies)
        # libtrust: coordinates must be exactly the curve size, leading zeros kept (spec §1.6).
        if len(xb) != size or len(yb) != size:
            raise KeyError_(f"{crv} coordinates must be {size} bytes, got x={len(xb)} y={len(yb)}")
        try:
            pub = ec.EllipticCurvePublicNumbers(int.from_bytes(xb, "big"), int.from_bytes(yb, "big"), curve).public_key()
        except ValueError:
            raise KeyError_(f"the point is not on curve {crv}") from None
    elif kty == "RSA":
        if has_d:
            raise KeyError_("RSA JWK cannot contain a private exponent 'd'")
        nb, eb = _member(jwk, "n", anomalies), _member(jwk, "e", anomalies)
        if len(eb) > 4 or not eb:
            raise KeyError_(f"RSA exponent of {len(eb)} bytes is not accepted")
        try:
            pub = rsa.RSAPublicNumbers(int.from_bytes(eb, "big"), int.from_bytes(nb, "big")).public_key()
        except ValueError as exc:
            raise KeyError_(f"invalid RSA key: {exc}") from None
    else:
        raise KeyError_(f"unsupported JWK key type {kty!r}")
    if kty == "EC" and has_d:  # libtrust does not check EC JWKs for "d" (spec §1.6); mfkit says so
        anomalies.append("jwk carries a private key member")
    info = describe_key(pub, tuple(anomalies))
    # libtrust refuses the whole document when the claimed kid differs (spec §1.6, checked).
    if kid is not None and kid != info.key_id:
        raise KeyError_(f"JWK kid {kid} does not match the key's ID {info.key_id}")
    return info


def key_from_x5c(chain: Any) -> tuple[KeyInfo, list[x509.Certificate]]:
    """Return the leaf key of an ``x5c`` chain (standard base64 DER, leaf first) and the certificates.

    Raises:
        KeyError_: empty chain, bad base64, bad DER, or a leaf key libtrust cannot use.
    """
    if not isinstance(chain, list) or not chain:
        raise KeyError_("x5c is not a non-empty array")
    if not all(isinstance(c, str) for c in chain):
        raise KeyError_("x5c entries must be strings")
    info, certs = _x5c_cached(tuple(chain))
    return info, list(certs)


@lru_cache(maxsize=256)
def _x5c_cached(chain: tuple[str, ...]) -> tuple[KeyInfo, tuple[x509.Certificate, ...]]:
    certs = []
    for i, item in enumerate(chain):
        try:
            certs.append(x509.load_der_x509_certificate(b64std_decode(item)))
        except (B64Error, ValueError) as exc:
            raise KeyError_(f"x5c[{i}] is not a DER certificate: {exc}") from None
    try:
        return describe_key(certs[0].public_key()), tuple(certs)
    except (KeyError_, ValueError) as exc:
        raise KeyError_(f"x5c leaf: {exc}") from None
