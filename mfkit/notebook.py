"""Rich HTML for notebooks.  Every document-derived string is escaped (manifests are hostile input)."""

from __future__ import annotations

from .analysis.document import Analysis
from .analysis.history import HISTORY_KINDS, build_history
from .report_forensic import analysis_summary_html

__all__ = ["analysis_html"]


def analysis_html(analysis: Analysis) -> str:
    """A self-contained, escaped HTML summary of one analysis.

    Shows the verdict, digests, signatures (with trust when the analysis carries it), findings,
    the history (schema 1; schema 2 without its config shows layers only) and the chain figure.

    Args:
        analysis: one analyzed document.

    Returns:
        An HTML fragment (no scripts, inline SVG).
    """
    h = build_history(analysis) if analysis.kind in HISTORY_KINDS else None
    return analysis_summary_html(analysis, h)
