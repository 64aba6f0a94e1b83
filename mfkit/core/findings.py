"""Findings: what an analysis says about a document, with where it says it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Finding", "Severity", "SEVERITY_ORDER"]

Severity = Literal["info", "warning", "error"]
SEVERITY_ORDER = {"info": 0, "warning": 1, "error": 2}


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation.

    Attributes:
        code: stable dotted code, e.g. ``jws.unsigned-content``.
        severity: ``info``, ``warning`` or ``error``.
        message: one sentence for people.
        where: a JSON path (``$.history[3]``) or a byte range (``bytes 6122..6140``), or "".
    """

    code: str
    severity: Severity
    message: str
    where: str = ""

    def to_dict(self) -> dict[str, str]:
        """Return the JSON form ``{code, severity, message, where}``."""
        return {"code": self.code, "severity": self.severity, "message": self.message, "where": self.where}
