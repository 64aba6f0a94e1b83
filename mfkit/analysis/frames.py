"""pandas DataFrames for notebooks, built lazily so pandas stays an optional extra."""

from __future__ import annotations

from typing import Any

from ..errors import UsageError

__all__ = ["dataframe"]


def dataframe(records: list[dict[str, Any]], columns: list[str]):  # -> pandas.DataFrame
    """``records`` as a DataFrame with ``columns`` in that order.

    Raises:
        UsageError: pandas is not installed (it comes with the ``mfkit[notebook]`` extra).
    """
    try:
        import pandas as pd
    except ImportError as exc:
        raise UsageError("pandas is needed for to_dataframe() but is not installed",
                         code="notebook.pandas-missing", hint="pip install 'mfkit[notebook]'") from exc
    return pd.DataFrame.from_records(records, columns=columns)
