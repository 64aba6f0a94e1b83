"""Errors raised when mfkit could not do the job.

A verdict (a bad signature, a broken chain) is never an exception: it is data in the
analysis.  Exceptions mean the input could not be read, the network or the disk failed,
or the caller misused the tool.  Each family maps to one exit code of the CLI::

    MfkitError                      exit 3 unless stated
    +-- UsageError                  exit 2  misuse: bad flags, bad reference
    +-- InputError                  bytes that cannot be read at all (missing file, unreadable transcript)
    +-- FetchError                  network: connection, DNS, TLS, HTTP status
    |   +-- RegistryError           the registry answered with an error body (errors[].code)
    |   +-- AuthError               token service refused, wrong credentials, empty grant
    |   +-- PolicyError             a request mfkit refuses to make (SSRF guard, cross-host credentials)
    +-- CaptureError                disk: cannot write or read back a capture
"""

from __future__ import annotations

__all__ = [
    "MfkitError",
    "UsageError",
    "InputError",
    "FetchError",
    "RegistryError",
    "AuthError",
    "PolicyError",
    "CaptureError",
    "EXIT_OK",
    "EXIT_FINDINGS",
    "EXIT_USAGE",
    "EXIT_INPUT",
]

EXIT_OK = 0  # every input analyzed, every signed one verified, no error finding
EXIT_FINDINGS = 1  # a verification failed or an error-level finding was reported
EXIT_USAGE = 2  # usage error
EXIT_INPUT = 3  # an input could not be read / fetched / written


class MfkitError(Exception):
    """Base of every error mfkit raises on purpose.

    Args:
        message: one line for people.
        code: a stable machine-readable code such as ``input.not-found``.
        hint: an optional one-line suggestion.
    """

    exit_code = EXIT_INPUT
    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.hint = hint

    def diagnostics(self) -> str:
        """Return the message and, when there is one, the hint, for people."""
        return f"{self.message}\nhint: {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict[str, str]:
        """Return ``{code, message}`` (plus ``hint``) for JSON output."""
        out = {"code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out


class UsageError(MfkitError):
    """The caller asked for something that cannot be done (bad flag, bad reference)."""

    exit_code = EXIT_USAGE
    default_code = "usage"


class InputError(MfkitError):
    """An input could not be read at all."""

    default_code = "input"


class FetchError(MfkitError):
    """A network operation failed (connection refused, DNS, TLS, unexpected status)."""

    default_code = "fetch"

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None,
                 url: str | None = None, status: int | None = None) -> None:
        super().__init__(message, code=code, hint=hint)
        self.url = url
        self.status = status


class RegistryError(FetchError):
    """The registry answered with an error; ``errors`` holds its ``errors[]`` entries."""

    default_code = "registry"

    def __init__(self, message: str, *, errors: list[dict] | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.errors = errors or []


class AuthError(FetchError):
    """Authentication failed or granted nothing."""

    default_code = "auth"


class PolicyError(FetchError):
    """mfkit refused a request to protect credentials or the network (SSRF, cross-host)."""

    default_code = "policy"


class CaptureError(MfkitError):
    """A capture could not be written or read back."""

    default_code = "capture"
