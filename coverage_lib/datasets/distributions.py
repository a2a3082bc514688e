"""Figures of the data set: the distributions of features and targets, and the received power
against distance beside 38.901's median per scenario (notebook 01)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..physics import propagation
from ..core.schema import FEATURES, TARGETS
from ..core.figure_style import label, LOG_SCALE, MIN_FONT_PT, OKABE_ITO, PAGE_WIDTH_IN


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
REFERENCE_LINK = {propagation.UMA: dict(bs_height_m=25.0, ue_height_m=1.5),
                  propagation.UMI: dict(bs_height_m=10.0, ue_height_m=1.5),
                  propagation.RMA: dict(bs_height_m=35.0, ue_height_m=1.5)}


def received_power_vs_distance(df: pd.DataFrame, band_ghz=(3.0, 4.0), reference_ghz=3.5):
    """Received power relative to EIRP vs distance, per scenario, for rows in one band,
    with the 38.901 median −PL curves (LOS, NLOS) of a reference link at ``reference_ghz``."""
    rows = df[df["frequency_ghz"].between(*band_ghz)]
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_WIDTH_IN, 3.4), sharey=True)
    for scenario, ax in zip((propagation.UMA, propagation.UMI, propagation.RMA), axes):
        sub = rows[rows["scenario"] == scenario]
        relative = sub["received_power_dbm"] - sub["tx_power_dbm"] - sub["antenna_gain_dbi"]
        for los, colour, name in ((1, OKABE_ITO[0], "LOS"), (0, OKABE_ITO[1], "NLOS")):
            mask = (sub["los"] == los).to_numpy()
            ax.scatter(sub["distance_m"][mask], relative[mask], s=3, alpha=0.35, color=colour,
                       label=f"samples, {name}", rasterized=True)
        d = np.geomspace(10.0, propagation.MAX_DISTANCE_M[scenario], 300)
        ref = REFERENCE_LINK[scenario]
        for los, colour, name in ((1, OKABE_ITO[4], "LOS"), (0, OKABE_ITO[3], "NLOS")):
            pl, _ = propagation.path_loss_db(scenario, los, d, reference_ghz, ref["bs_height_m"],
                                         ref["ue_height_m"])
            ax.plot(d, -pl, color=colour, lw=2, label=f"38.901 median, {name}")
        ax.set_xscale("log")
        ax.set_title(f"{propagation.SCENARIO_NAMES[scenario]} ({len(sub)} rows)")
        ax.set_xlabel(label("distance_m"))
    axes[0].set_ylabel("received power − EIRP [dB]")
    fig.suptitle(f"Rows at {band_ghz[0]}–{band_ghz[1]} GHz; curves: the median of a reference "
                 f"link at {reference_ghz} GHz")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, markerscale=3, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


