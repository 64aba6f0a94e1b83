"""Docker image references: grammar, normalization and token scopes (spec §6.1, §5.7).

Pure: no I/O, no clock. Every rejection raises :class:`~mfkit.errors.UsageError`.

>>> ref = parse_reference("nginx")
>>> str(ref), ref.api_host, ref.ref
('docker.io/library/nginx:latest', 'registry-1.docker.io', 'latest')
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from ..errors import UsageError

__all__ = [
    "Reference",
    "parse_reference",
    "parse_repository",
    "is_valid_tag",
    "validate_tag",
    "is_valid_digest",
    "scope",
    "repository_scope",
    "split_host",
    "is_loopback",
    "DOCKER_HUB",
    "DOCKER_HUB_API",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = {"index.docker.io": DOCKER_HUB}
MAX_PATH = 255

_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]")
_PORT = re.compile(r"[0-9]{1,5}")
_DIGEST = re.compile(r"([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*):([0-9a-fA-F]{32,})")
_DIGEST_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
_ID = re.compile(r"[a-f0-9]{64}")


def _bad(text: str, why: str, hint: str | None = None) -> UsageError:
    return UsageError(f"invalid reference {text!r}: {why}", code="usage.reference", hint=hint)


def is_valid_tag(tag: str) -> bool:
    """True when ``tag`` matches ``[\\w][\\w.-]{0,127}`` (spec §6.1)."""
    return bool(_TAG.fullmatch(tag))


def validate_tag(tag: str) -> str:
    """Return ``tag`` or raise :class:`UsageError` naming the rule it breaks."""
    if not is_valid_tag(tag):
        raise UsageError(f"invalid tag {tag!r}: tags are 1-128 characters of [A-Za-z0-9_.-], "
                         "not starting with '.' or '-'", code="usage.tag")
    return tag


def is_valid_digest(digest: str) -> bool:
    """True for ``algorithm:hex``; sha256/sha384/sha512 need the exact lower-case length (OCI)."""
    m = _DIGEST.fullmatch(digest)
    if not m:
        return False
    want = _DIGEST_LEN.get(m.group(1))
    return want is None or (len(m.group(2)) == want and m.group(2) == m.group(2).lower())


def split_host(domain: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` / ``[v6][:port]`` into (host without brackets, port or None)."""
    if domain.startswith("["):
        end = domain.find("]")
        host, rest = domain[1:end], domain[end + 1:]
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:] else None
    host, _, port = domain.partition(":")
    return host, int(port) if port.isdigit() else None


def is_loopback(domain: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1), with or without port."""
    host = split_host(domain)[0].lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _valid_domain(domain: str) -> bool:
    if domain.startswith("["):
        end = domain.find("]")
        if end < 0:
            return False
        try:
            ipaddress.IPv6Address(domain[1:end])
        except ValueError:
            return False
        rest = domain[end + 1:]
    else:
        host, sep, port = domain.partition(":")
        rest = sep + port
        if not host or not all(_DOMAIN_COMPONENT.fullmatch(c) for c in host.split(".")):
            return False
    if rest:
        return rest.startswith(":") and bool(_PORT.fullmatch(rest[1:])) and 0 < int(rest[1:]) < 65536
    return True


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed, normalized reference.

    Attributes:
        input: the text as typed.
        domain: registry domain as in references (``docker.io``, ``host:port``, ``[::1]:5000``).
        path: repository path (``library/nginx``).
        tag: tag, or None; ``latest`` when neither tag nor digest was typed.
        digest: ``algorithm:hex`` or None; when set, it decides what is fetched.
        tag_defaulted: True when ``latest`` was filled in.
    """

    input: str
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None
    tag_defaulted: bool = False

    @property
    def api_host(self) -> str:
        """Host[:port] to talk to: ``docker.io`` becomes ``registry-1.docker.io`` (spec §6.1)."""
        return DOCKER_HUB_API if self.domain == DOCKER_HUB else self.domain

    @property
    def name(self) -> str:
        """``domain/path`` without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def ref(self) -> str | None:
        """What goes after ``/manifests/``: the digest if any, else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    def with_tag(self, tag: str) -> "Reference":
        """The same repository at ``tag`` (no digest)."""
        return replace(self, tag=validate_tag(tag), digest=None, tag_defaulted=False)

    def with_digest(self, digest: str) -> "Reference":
        """The same repository at ``digest`` (tag dropped)."""
        if not is_valid_digest(digest):
            raise _bad(digest, "not a valid digest")
        return replace(self, tag=None, digest=digest, tag_defaulted=False)


def _parse(text: str, default_tag: str | None) -> Reference:
    if not text:
        raise _bad(text, "empty")
    if "://" in text:
        raise _bad(text, "a reference has no URL scheme",
                   hint="write host[:port]/repository[:tag]; use --plain-http for http registries")
    if any(ch.isspace() for ch in text):
        raise _bad(text, "contains white space")
    name, digest = text, None
    if "@" in text:
        name, _, digest = text.rpartition("@")
        if not is_valid_digest(digest):
            raise _bad(text, f"digest {digest!r} is not algorithm:hex (sha256 needs 64 lower-case hex digits)")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not is_valid_tag(tag):
            raise _bad(text, f"tag {tag!r} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")
    if not name:
        raise _bad(text, "no repository name")
    first, sep, rest = name.partition("/")
    looks_like_domain = sep and ("." in first or ":" in first or first == "localhost"
                                 or first.startswith("[") or first != first.lower())
    if looks_like_domain:
        domain, path = first, rest
        if not _valid_domain(domain):
            raise _bad(text, f"registry host {domain!r} is not host[:port] or [IPv6][:port]")
    else:
        if _ID.fullmatch(name):
            raise _bad(text, "a 64-hex name is ambiguous with an image ID")
        domain, path = DOCKER_HUB, name
    domain = _HUB_ALIASES.get(domain.lower(), domain)
    if domain == DOCKER_HUB and "/" not in path:
        path = "library/" + path
    if not path:
        raise _bad(text, "no repository path after the registry host")
    for comp in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(comp):
            why = "must be lower-case" if comp.lower() != comp else \
                "components are [a-z0-9] runs joined by '.', '_', '__' or '-'"
            raise _bad(text, f"repository component {comp!r} {why}")
    if len(path) > MAX_PATH:
        raise _bad(text, f"repository path longer than {MAX_PATH} characters")
    defaulted = False
    if tag is None and digest is None and default_tag:
        tag, defaulted = default_tag, True
    return Reference(text, domain, path, tag, digest, defaulted)


def parse_reference(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse and normalize ``text`` (spec §6.1).

    ``docker.io``/``index.docker.io`` become ``docker.io`` with ``library/`` added to
    single-component paths; no tag and no digest gives ``default_tag``.

    Raises:
        UsageError: the text is not a valid reference.
    """
    return _parse(text, default_tag)


def parse_repository(text: str) -> Reference:
    """Parse a repository name that must carry neither tag nor digest (``--all-tags``)."""
    ref = _parse(text, None)
    if ref.tag or ref.digest:
        raise UsageError(f"{text!r}: --all-tags takes a repository without tag or digest",
                         code="usage.reference")
    return ref


def scope(resource_type: str, name: str, actions: list[str] | tuple[str, ...]) -> str:
    """``type:name:a,b`` (spec §5.7)."""
    return f"{resource_type}:{name}:{','.join(actions)}"


def repository_scope(path: str, *actions: str) -> str:
    """``repository:<path>:pull`` (actions default to ``pull``)."""
    return scope("repository", path, actions or ("pull",))
