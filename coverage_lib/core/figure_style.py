"""One style for every figure of the book: a colour-blind-safe palette (Okabe–Ito), axes with
units, sizes for the page.

Figures are sized for the page: at most ``PAGE_WIDTH_IN`` wide, shown in notebooks at
``FIGURE_DPI`` (about the book's content column, ``CONTENT_WIDTH_PX``) from a PNG of twice that
resolution ("retina"), with no text smaller than ``MIN_FONT_PT``: read at 100 % zoom, the
smallest label is ``MIN_FONT_PT`` / 72 × ``FIGURE_DPI`` ≈ 12 px tall.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd


OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
             "#000000"]


UNITS = {
    "frequency_ghz": "GHz", "distance_m": "m", "bs_height_m": "m", "ue_height_m": "m",
    "tx_power_dbm": "dBm", "antenna_gain_dbi": "dBi", "bandwidth_mhz": "MHz",
    "noise_figure_db": "dB", "rain_rate_mmh": "mm/h", "water_vapour_gm3": "g/m³",
    "scenario": "0 UMa, 1 UMi, 2 RMa", "los": "0/1", "inr_db": "dB",
    "received_power_dbm": "dBm", "sinr_db": "dB", "coverage_radius_m": "m",
    "coverage_area_km2": "km²", "qos_score": "0–1",
}


LOG_SCALE = {"frequency_ghz", "distance_m"}


# The book's content column (sphinx-book-theme at a 1280 px window) and the figures that fit it.
CONTENT_WIDTH_PX = 760


PAGE_WIDTH_IN = 7.0


FIGURE_DPI = 108              # 7 in → 756 px shown, from a 1512 px PNG (≤ 2 × the column)


MIN_FONT_PT = 8.0


def use_style() -> None:
    """The book's figure style; in a notebook, PNGs at twice the shown resolution."""
    plt.rcParams.update({
        "figure.dpi": FIGURE_DPI, "savefig.dpi": 2 * FIGURE_DPI, "axes.grid": True,
        "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
        "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "figure.titlesize": 9,
        "xtick.labelsize": MIN_FONT_PT, "ytick.labelsize": MIN_FONT_PT,
        "legend.fontsize": MIN_FONT_PT, "legend.title_fontsize": MIN_FONT_PT,
        "axes.prop_cycle": plt.cycler(color=OKABE_ITO),
    })
    pd.set_option("display.max_colwidth", None)  # tables show their text whole
    try:  # the inline backend: a 2× PNG with its shown width in the output's metadata
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")


def too_small_text(fig) -> list[str]:
    """Every visible text of ``fig`` set smaller than ``MIN_FONT_PT`` (empty if none): the
    figure check the tests run on every figure of the book."""
    fig.canvas.draw()
    return [f"{t.get_text()!r} at {t.get_fontsize():g} pt"
            for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
            if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT_PT]


def label(column: str) -> str:
    return f"{column} [{UNITS[column]}]" if column in UNITS else column


def show(fig) -> None:
    """Display ``fig`` once and close it, so no backend shows it a second time."""
    from IPython.display import display

    display(fig)
    plt.close(fig)


def series(values: dict):
    """Named values as a one-column table, for a notebook to show what it glued."""
    return pd.Series(values).to_frame("value")
