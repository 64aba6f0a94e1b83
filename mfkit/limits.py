"""Size limits in one place (no imports, so every layer can read them cheaply)."""

__all__ = ["DEFAULT_MAX_SIZE", "MANIFEST_FETCH_LIMIT", "LIST_FETCH_LIMIT", "MAX_PAGES"]

DEFAULT_MAX_SIZE = 64 * 1024 * 1024  # largest input read offline; --max-size raises it
MANIFEST_FETCH_LIMIT = 4 * 1024 * 1024  # distribution's PUT limit, containers/image's read limit (spec §6.6)
LIST_FETCH_LIMIT = 32 << 20  # one tag-list or catalog page (--max-list-size)
MAX_PAGES = 1000  # cap on Link pages followed (spec §6.3)
