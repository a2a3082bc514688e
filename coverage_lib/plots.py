"""Figures of the book: one style, axes with units, a colour-blind-safe palette (Okabe–Ito).

Figures are sized for the page: at most ``PAGE_WIDTH_IN`` wide, shown in notebooks at
``FIGURE_DPI`` (about the book's content column, ``CONTENT_WIDTH_PX``) from a PNG of twice that
resolution ("retina"), with no text smaller than ``MIN_FONT_PT``: read at 100 % zoom, the
smallest label is ``MIN_FONT_PT`` / 72 × ``FIGURE_DPI`` ≈ 12 px tall.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import physics
from .dataset import FEATURES, TARGETS

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


def histograms(df: pd.DataFrame, columns, ncols: int = 4, title: str = ""):
    """One histogram per column; log-spaced bins for log-uniform features."""
    nrows = int(np.ceil(len(columns) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(PAGE_WIDTH_IN, 1.7 * nrows + 0.3),
                             squeeze=False)
    for ax, col in zip(axes.flat, columns):
        values = df[col].to_numpy(dtype=float)
        if col in LOG_SCALE:
            ax.hist(values, bins=np.geomspace(values.min(), values.max(), 40), color=OKABE_ITO[0])
            ax.set_xscale("log")
        else:
            ax.hist(values, bins=40, color=OKABE_ITO[0])
        ax.set_xlabel(label(col), fontsize=MIN_FONT_PT)
    for row in axes:
        row[0].set_ylabel("rows")
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def feature_histograms(df: pd.DataFrame):
    return histograms(df, FEATURES, title="The 13 link features")


def target_histograms(df: pd.DataFrame):
    return histograms(df, TARGETS, ncols=3, title="The 5 targets")


# A representative link per scenario for the median curves (heights at typical values).
REFERENCE_LINK = {physics.UMA: dict(bs_height_m=25.0, ue_height_m=1.5),
                  physics.UMI: dict(bs_height_m=10.0, ue_height_m=1.5),
                  physics.RMA: dict(bs_height_m=35.0, ue_height_m=1.5)}


def received_power_vs_distance(df: pd.DataFrame, band_ghz=(3.0, 4.0), reference_ghz=3.5):
    """Received power relative to EIRP vs distance, per scenario, for rows in one band,
    with the 38.901 median −PL curves (LOS, NLOS) of a reference link at ``reference_ghz``."""
    rows = df[df["frequency_ghz"].between(*band_ghz)]
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_WIDTH_IN, 3.4), sharey=True)
    for scenario, ax in zip((physics.UMA, physics.UMI, physics.RMA), axes):
        sub = rows[rows["scenario"] == scenario]
        relative = sub["received_power_dbm"] - sub["tx_power_dbm"] - sub["antenna_gain_dbi"]
        for los, colour, name in ((1, OKABE_ITO[0], "LOS"), (0, OKABE_ITO[1], "NLOS")):
            mask = (sub["los"] == los).to_numpy()
            ax.scatter(sub["distance_m"][mask], relative[mask], s=3, alpha=0.35, color=colour,
                       label=f"samples, {name}", rasterized=True)
        d = np.geomspace(10.0, physics.MAX_DISTANCE_M[scenario], 300)
        ref = REFERENCE_LINK[scenario]
        for los, colour, name in ((1, OKABE_ITO[4], "LOS"), (0, OKABE_ITO[3], "NLOS")):
            pl, _ = physics.path_loss_db(scenario, los, d, reference_ghz, ref["bs_height_m"],
                                         ref["ue_height_m"])
            ax.plot(d, -pl, color=colour, lw=2, label=f"38.901 median, {name}")
        ax.set_xscale("log")
        ax.set_title(f"{physics.SCENARIO_NAMES[scenario]} ({len(sub)} rows)")
        ax.set_xlabel(label("distance_m"))
    axes[0].set_ylabel("received power − EIRP [dB]")
    fig.suptitle(f"Rows at {band_ghz[0]}–{band_ghz[1]} GHz; curves: the median of a reference "
                 f"link at {reference_ghz} GHz")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, markerscale=3, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def show(fig) -> None:
    """Display ``fig`` once and close it, so no backend shows it a second time."""
    from IPython.display import display

    display(fig)
    plt.close(fig)


def training_curves(histories: dict):
    """Training loss, validation loss and validation MAE per epoch, one line per run, in one
    figure. ``histories`` maps a run's name to its history JSON (as the trainer writes it)."""
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_WIDTH_IN, 2.7))
    panels = (("train_loss", "training loss", "normalised MSE"),
              ("val_loss", "validation loss", "normalised MSE"),
              ("val_mae", "validation MAE (● best)", "normalised MAE, mean of 5 targets"))
    from .registry import colours  # each model in its colour, as in every other figure

    for (key, title, unit), ax in zip(panels, axes):
        for i, (name, history) in enumerate(histories.items()):
            values = history.get(key, [])
            epochs = np.arange(1, len(values) + 1)
            c = colours().get(name, OKABE_ITO[i % len(OKABE_ITO)])
            ax.plot(epochs, values, color=c, label=name)
            best = history.get("best_epoch")
            if key == "val_mae" and best:
                ax.plot(best, values[best - 1], "o", color=c)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(unit)
        ax.set_title(title)
    axes[-1].legend()
    fig.tight_layout()
    return fig


def series(values: dict):
    """Named values as a one-column table, for a notebook to show what it glued."""
    return pd.Series(values).to_frame("value")
