"""The HTML report kit: one look for every crmkit report.

A report is :func:`page` of fragments built with :func:`escape`, :func:`table` and the
inline-SVG charts (:func:`bar_chart`, :func:`stacked_bar_chart`, :func:`pie_chart`,
:func:`line_chart`, :func:`timeline_chart`).  The page is self-contained: inline CSS, no
script, no network, fonts that render CJK, a print stylesheet (A4 landscape).  The kit
knows nothing of migrations, validations or rollouts; each feature's ``report`` module
turns its own facts into fragments.
"""

from crmkit.report.charts import (
    PALETTE,
    bar_chart,
    line_chart,
    num,
    pie_chart,
    stacked_bar_chart,
    text_width,
    timeline_chart,
)
from crmkit.report.document import FONTS, TONES, Html, escape, page, table

__all__ = [
    "FONTS",
    "PALETTE",
    "TONES",
    "Html",
    "bar_chart",
    "escape",
    "line_chart",
    "num",
    "page",
    "pie_chart",
    "stacked_bar_chart",
    "table",
    "text_width",
    "timeline_chart",
]
