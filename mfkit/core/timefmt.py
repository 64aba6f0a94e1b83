"""RFC 3339 times as registries, Docker and libtrust write them (one reader for the whole project).

Docker's ``created`` carries nanoseconds; libtrust's ``time`` is whole seconds; offsets such as
``+01:00`` occur.  A time without a zone is read as UTC.  Anything else is None, never an error.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["parse_ns", "parse_datetime"]

_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?"
                      r"([Zz]|[+-]\d{2}:?\d{2})?")


def _parts(text: object) -> tuple[dt.datetime, str] | None:
    if not isinstance(text, str):
        return None
    m = _RFC3339.fullmatch(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, zone = m.groups()
    tz = dt.timezone.utc
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        tz = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        return dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=tz), frac or ""
    except ValueError:
        return None


def parse_ns(text: object) -> int | None:
    """Integer nanoseconds since the epoch (full precision, for ordering), or None."""
    parts = _parts(text)
    if parts is None:
        return None
    stamp, frac = parts
    return int(stamp.timestamp()) * 1_000_000_000 + int(frac.ljust(9, "0"))


def parse_datetime(text: object) -> dt.datetime | None:
    """An aware datetime (fraction cut to microseconds), or None."""
    parts = _parts(text)
    if parts is None:
        return None
    stamp, frac = parts
    return stamp.replace(microsecond=int(frac[:6].ljust(6, "0")))
