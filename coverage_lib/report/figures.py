"""Figures of the results chapter: training curves of every run, predicted against true,
residuals against the noise floor, physics curves, a coverage map, accuracy and latency bars;
and of the Selector's: its frontier (error against speed and against the share sent to the
backup) and its gate's risk–coverage curve; and the first page's: the backup against the MLP,
in and out of distribution (``claim``).

Every figure uses ``core.figure_style.use_style`` (Okabe–Ito palette, units on the axes); ``save`` writes
PNG and PDF atomically.
"""
from __future__ import annotations

import dataclasses
import io as _io
from pathlib import Path

import matplotlib
import matplotlib.lines
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from ..core import domain, figure_style, paths, validation
from ..evaluation import seeds_stage
from ..physics import propagation
from ..models import registry
from . import tables
from ..core.schema import FEATURES, OOD_SPLITS, TARGETS
from ..core.io import atomic_write_bytes
from ..core.figure_style import label, MIN_FONT_PT, OKABE_ITO, PAGE_WIDTH_IN
from ..evaluation import result_files, scoring
from ..evaluation.paper_goals import noise_free_mae
# The figures stage's parameters (notebooks/05_plots.ipynb), each with its rule.
PARAMETERS = {"seed": validation.non_negative_int, "n_plot_rows": validation.positive_int,
              "map_points": validation.positive_int, "map_extent_m": validation.positive_number}
OOD_SHADE = {"color": OKABE_ITO[6], "alpha": 0.25, "lw": 0}
# A representative urban-macro link for the physics curves and the coverage map.
REFERENCE_LINK = {"frequency_ghz": 3.5, "distance_m": 500.0, "bs_height_m": 25.0,
                  "ue_height_m": 1.5, "tx_power_dbm": 43.0, "antenna_gain_dbi": 15.0,
                  "bandwidth_mhz": 20.0, "noise_figure_db": 7.0, "rain_rate_mmh": 0.0,
                  "water_vapour_gm3": 7.5, "scenario": propagation.UMA, "los": 0, "inr_db": 0.0}


def colour(name: str, i: int = 0) -> str:
    """The model's colour from the registry (the same in every figure); a fallback for names
    it does not know."""
    return registry.colours().get(name, OKABE_ITO[(i + 4) % len(OKABE_ITO)])


def keep(fig, data_dir, name: str) -> None:
    """Save ``fig`` as ``<data_dir>/figures/<name>.png`` and ``.pdf`` and show the saved PNG
    (at half its pixel size: the inline backend's "retina" form, drawn once, not again)."""
    from IPython.display import Image, display

    png, _ = save(fig, paths.resolve(data_dir) / "figures", name)
    plt.close(fig)
    display(Image(data=png.read_bytes(), format="png", retina=True))


def save(fig, folder, name: str) -> list[Path]:
    """Write ``fig`` as ``<name>.png`` and ``<name>.pdf`` under ``folder`` (atomically)."""
    paths = []
    for fmt in ("png", "pdf"):
        buffer = _io.BytesIO()
        fig.savefig(buffer, format=fmt, bbox_inches="tight")
        paths.append(atomic_write_bytes(Path(folder) / f"{name}.{fmt}", buffer.getvalue()))
    return paths


def all_training_curves(histories: dict):
    """Every run in one figure: training loss (the Mamba-3's data and physics terms apart),
    validation loss and validation MAE per epoch, log scale; the best epoch marked."""
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_WIDTH_IN, 3.3))
    for i, (name, history) in enumerate(histories.items()):
        c = colour(name, i)
        epochs = np.arange(1, len(history["train_loss"]) + 1)
        axes[0].plot(epochs, history["train_loss"], color=c, label=f"{name}: total")
        if "train_physics_loss" in history:
            axes[0].plot(epochs, history["train_data_loss"], color=c, ls="--",
                         label=f"{name}: data term")
            axes[0].plot(epochs, history["train_physics_loss"], color=c, ls=":",
                         label=f"{name}: physics term")
        axes[1].plot(epochs, history["val_loss"], color=c, label=name)
        axes[2].plot(epochs, history["val_mae"], color=c, label=name)
        best = history.get("best_epoch")
        if best:
            axes[2].plot(best, history["val_mae"][best - 1], "o", color=c)
    titles = (("training loss", "normalised MSE (+ physics)"),
              ("validation loss", "normalised MSE"),
              ("validation MAE (● best)", "normalised MAE, mean of 5"))
    for ax, (title, unit) in zip(axes, titles):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(unit)
        ax.set_title(title)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False)
    rows = int(np.ceil(len(labels) / 3))
    fig.tight_layout(rect=(0, 0.07 * rows, 1, 1))
    return fig


def predicted_vs_true(frame: pd.DataFrame, predictions: dict, gridsize: int = 40):
    """Hexbin of predicted against true, a row per model, a column per target; the first
    row is the oracle's (noise-free median against the noisy target) for reference. One
    colour scale (rows per hexagon, log) for every panel, with its colourbar."""
    from matplotlib.colors import LogNorm

    names = list(predictions)
    fig, axes = plt.subplots(len(names), len(TARGETS),
                             figsize=(PAGE_WIDTH_IN, 1.3 * len(names) + 0.9), squeeze=False)
    norm = LogNorm(1, max(1, len(frame) // 10))
    for r, name in enumerate(names):
        for c, target in enumerate(TARGETS):
            ax = axes[r, c]
            true = frame[target].to_numpy(dtype=float)
            pred = predictions[name][target].to_numpy(dtype=float)
            log = target in ("coverage_radius_m", "coverage_area_km2")
            image = ax.hexbin(true, pred, gridsize=gridsize, norm=norm, mincnt=1, cmap="cividis",
                              xscale="log" if log else "linear",
                              yscale="log" if log else "linear",
                              rasterized=True)  # an image in the PDF, not thousands of hexagons
            finite = true[true > 0] if log else true
            lo, hi = np.min(finite), np.max(finite)
            ax.plot([lo, hi], [lo, hi], color="#000000", lw=0.8, ls="--")
            ax.tick_params(labelsize=MIN_FONT_PT)
            if r == len(names) - 1:
                ax.set_xlabel(f"true [{figure_style.UNITS[target]}]", fontsize=MIN_FONT_PT)
            if c == 0:
                ax.set_ylabel(f"{name}\npredicted", fontsize=MIN_FONT_PT)
            if r == 0:
                ax.set_title(tables.NAMES[target], fontsize=MIN_FONT_PT)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    bar = fig.add_axes((0.3, 0.045, 0.4, 0.012))
    fig.colorbar(image, cax=bar, orientation="horizontal", label="test rows per hexagon")
    return fig


def power_residuals(frame: pd.DataFrame, predictions: dict):
    """Received-power residuals (predicted − target) of each model against the noise floor
    (the oracle's residuals: the shadow fading itself), and each model's error against the
    noise-free median."""
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH_IN, 3.6))
    target, median = frame["received_power_dbm"], frame["received_power_median_dbm"]
    noise = (median - target).to_numpy()
    bins = np.linspace(-25, 25, 101)
    axes[0].hist(noise, bins=bins, histtype="stepfilled", color="#BBBBBB",
                 label=f"noise floor (oracle): σ {noise.std():.2f} dB")
    for i, (name, pred) in enumerate(predictions.items()):
        res = (pred["received_power_dbm"] - target).to_numpy()
        err = (pred["received_power_dbm"] - median).to_numpy()
        axes[0].hist(res, bins=bins, histtype="step", color=colour(name, i), lw=1.2,
                     label=f"{name}: σ {res.std():.2f} dB, MAE vs median "
                           f"{np.abs(err).mean():.3f} dB")
        axes[1].hist(err, bins=np.linspace(-3, 3, 121), histtype="step", color=colour(name, i),
                     lw=1.2)
    axes[0].set_xlabel("predicted − target [dB]")
    axes[0].set_title("residuals against the shadow-fading floor")
    axes[1].set_xlabel("predicted − noise-free median [dB]")
    axes[1].set_title("error against the median")
    for ax in axes:
        ax.set_ylabel("test rows")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=1, frameon=False)
    fig.tight_layout(rect=(0, 0.075 * len(labels), 1, 1))
    return fig


def _link_rows(link: dict, column: str, values) -> pd.DataFrame:
    rows = pd.DataFrame({c: np.full(len(values), link[c], dtype=float) for c in FEATURES})
    rows[column] = values
    return rows


# The rain panel moves the reference link to 28 GHz, where rain attenuation is visible.
RAIN_PANEL = {"frequency_ghz": 28.0}


def physics_curves(predictors: dict, id_ranges: dict, link: dict | None = None,
                   n: int = 200):
    """Received power of one fixed link against distance, rain rate and frequency (the other
    inputs held): the noise-free physics beside each predictor, the out-of-distribution part
    of each axis shaded. ``predictors`` maps a name to ``predict(features) -> targets``. The
    rain sweep uses the link at ``RAIN_PANEL``'s frequency (28 GHz), where rain matters."""
    link = {**REFERENCE_LINK, **(link or {})}
    ranges = {c: domain.BY_SCENARIO[c][int(link["scenario"])]  # the link's scenario's domain
              for c in ("distance_m", "frequency_ghz")}
    axes_spec = {"distance_m": np.geomspace(*ranges["distance_m"], n),
                 "rain_rate_mmh": np.linspace(*domain.DOMAIN["rain_rate_mmh"], n),
                 "frequency_ghz": np.geomspace(*ranges["frequency_ghz"], n)}
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_WIDTH_IN, 3.5), sharey=False)
    for ax, (column, values) in zip(axes, axes_spec.items()):
        rows = _link_rows({**link, **RAIN_PANEL} if column == "rain_rate_mmh" else link,
                          column, values)
        ax.plot(values, propagation.link_budget(rows)["received_power_dbm"], color="#000000",
                lw=2.2, label="physics (median)")
        for i, (name, predict) in enumerate(predictors.items()):
            ax.plot(values, predict(rows)["received_power_dbm"], color=colour(name, i),
                    lw=1.3, label=name)
        low, high = id_ranges.get(column, (values.min(), values.max()))
        if values.min() < low:
            ax.axvspan(values.min(), low, **OOD_SHADE)
        if values.max() > high:
            ax.axvspan(high, values.max(), **OOD_SHADE, label="out of distribution")
        if column in ("distance_m", "frequency_ghz"):
            ax.set_xscale("log")
        ax.set_xlabel(label(column))
        at = f" at {RAIN_PANEL['frequency_ghz']:g} GHz" if column == "rain_rate_mmh" else ""
        ax.set_title(f"vs {column.split('_')[0]}{at}")
        ax.set_ylabel(label("received_power_dbm"))
    handles, labels = axes[2].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False)
    fixed = ", ".join(f"{c} {link[c]:g}" for c in ("frequency_ghz", "distance_m",
                                                   "rain_rate_mmh", "los"))
    fig.suptitle(f"Received power of one UMa link, the others held\n({fixed}; "
                 f"shaded: beyond the training ranges)")
    fig.tight_layout(rect=(0, 0.07 * int(np.ceil(len(labels) / 3)), 1, 1))
    return fig


def map_features(extent_m: float, points: int, link: dict | None = None) -> tuple:
    """A square grid of ``points``² user positions within ±``extent_m`` of one site: the
    features of each position (distance from the site, LOS where the 38.901 LOS probability
    is ≥ 0.5, the rest of the reference link held) and the grid's x, y axes."""
    link = {**REFERENCE_LINK, **(link or {})}
    axis = np.linspace(-extent_m, extent_m, points)
    x, y = np.meshgrid(axis, axis)
    distance = np.maximum(np.hypot(x, y), 10.0).ravel()
    rows = _link_rows(link, "distance_m", distance)
    p_los = propagation.los_probability(np.full(len(rows), int(link["scenario"])), distance,
                                    rows["ue_height_m"].to_numpy())
    rows["los"] = (p_los >= 0.5).astype(float)
    return rows, axis


def coverage_map_of(models, physics_assumptions: dict, extent_m: float, points: int,
                    id_distance_m: float):
    """The coverage map (``coverage_map``) of a ``scoring.Models``: SINR from the physics,
    each backbone and the Selector over ``map_features``' grid, and the Selector's routing."""
    grid, axis = map_features(extent_m, points)
    answers, flags = scoring.predictions(grid, dataclasses.replace(models, lightgbm=None),
                                            physics_assumptions["implementation_gap_db"],
                                            oracle=False)
    sinr = {"physics (median)": propagation.link_budget(grid, **physics_assumptions)["sinr_db"],
            **{name: p["sinr_db"] for name, p in result_files.named(answers).items()}}
    to_backup = (flags["routed_to"] == registry.by_role("backup").key).to_numpy()
    return coverage_map({k: v.to_numpy() for k, v in sinr.items()}, to_backup, axis,
                        id_distance_m)


def coverage_map(sinr: dict, routed_to_backup: np.ndarray, axis: np.ndarray,
                 id_distance_m: float):
    """SINR over the area around one site, one panel per source (physics first), and a last
    panel showing where the Selector sent the link to its backup (the Mamba-3); three panels a
    row. The training range's outer distance is drawn as a circle."""
    n = len(sinr) + 1
    ncols = 3
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(PAGE_WIDTH_IN, 2.4 * nrows + 0.2),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    extent = (axis[0] / 1e3, axis[-1] / 1e3, axis[0] / 1e3, axis[-1] / 1e3)
    side = len(axis)
    values = np.concatenate([np.asarray(v) for v in sinr.values()])
    vmin, vmax = np.percentile(values, [1, 99])
    panels = axes.flat
    for ax, (name, field) in zip(panels, sinr.items()):
        image = ax.imshow(np.asarray(field).reshape(side, side), origin="lower", extent=extent,
                          cmap="viridis", vmin=vmin, vmax=vmax)
        ax.set_title(name)
    routing = axes.flat[n - 1]
    routing.imshow(np.asarray(routed_to_backup, dtype=float).reshape(side, side),
                   origin="lower", extent=extent, cmap="Greys", vmin=0, vmax=1)
    routing.set_title(f"Selector → backup: {np.mean(routed_to_backup):.0%}\n(black)")
    theta = np.linspace(0, 2 * np.pi, 200)
    for ax in axes.flat[:n]:
        ax.plot(id_distance_m / 1e3 * np.cos(theta), id_distance_m / 1e3 * np.sin(theta),
                color=OKABE_ITO[6], lw=1)
        ax.grid(False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("x [km]")
    for ax in axes[:, 0]:
        ax.set_ylabel("y [km]")
    fig.colorbar(image, ax=axes.ravel().tolist(), label=label("sinr_db"), shrink=0.6)
    return fig


def accuracy_bars(accuracy: dict, seeds: dict | None = None):
    """MAE of every model but the oracle relative to the primary backbone's (the MLP), per
    target, on every split (log scale; 1 = the MLP); three splits a row, the legend below.

    With ``seeds`` (``results/seeds.json`` of two or more seeds) each bar is the mean over the
    seeds of the per-seed ratio (paired: both models trained on that seed's split), and its
    error bar that ratio's t-interval."""
    names, primary = registry.display_names(), registry.by_role("primary").key
    runs, level = seeds_stage.seed_accuracies(seeds, accuracy)

    def ratio(split, model, target):
        iv = seeds_stage.interval([a[split][model][target]["mae"] / a[split][primary][target]["mae"]
                                 for a in runs], level)
        return iv["mean"], iv["half_width"] or 0.0
    splits = [s for s in ("test", *OOD_SPLITS) if s in accuracy]
    models = [m for m in ("lightgbm", *registry.BACKBONES, "selector")
              if m != primary and m in accuracy[splits[0]]]
    ncols = min(3, len(splits))
    nrows = int(np.ceil(len(splits) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(PAGE_WIDTH_IN, 2.4 * nrows + 0.6),
                             sharey=True, squeeze=False)
    width = 0.8 / len(models)
    for ax, split in zip(axes.flat, splits):
        for i, model in enumerate(models):
            means, halves = zip(*(ratio(split, model, t) for t in TARGETS))
            ax.bar(np.arange(len(TARGETS)) + (i - (len(models) - 1) / 2) * width, means,
                   width, color=colour(names[model], i), label=names[model],
                   yerr=halves if len(runs) > 1 else None, error_kw={"lw": 0.8, "capsize": 1.5})
        ax.axhline(1.0, color="#000000", lw=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(np.arange(len(TARGETS)))
        ax.set_xticklabels([tables.NAMES[t] for t in TARGETS], rotation=30, ha="right")
        ax.set_title(split)
    for ax in axes.flat[len(splits):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"MAE / {names[primary]}'s")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def latency_bars(latency_rows: list):
    """Median latency at batch 1 (top) and throughput at batch 4096 (bottom), per model and
    variant, log scale."""
    table = pd.DataFrame(latency_rows)
    heights = [0.19 * (table["batch"] == b).sum() + 0.7 for b in (1, 4096)]
    fig, axes = plt.subplots(2, 1, figsize=(PAGE_WIDTH_IN, sum(heights)),
                             gridspec_kw={"height_ratios": heights})
    for ax, batch, value, xlabel in ((axes[0], 1, "median_ms", "median latency, batch 1 [ms]"),
                                     (axes[1], 4096, "rows_per_s",
                                      "throughput, batch 4096 [rows/s]")):
        rows = table[table["batch"] == batch].reset_index(drop=True)
        names = rows["model"] + ": " + rows["variant"]
        ax.barh(np.arange(len(rows)), rows[value],
                color=[colour(m, i) for i, m in enumerate(rows["model"])])
        ax.set_yticks(np.arange(len(rows)))
        ax.set_yticklabels(names)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(xlabel)
    fig.tight_layout()
    return fig


def learning_curves(curves: dict, reference: dict | None = None):
    """Test error against training rows (log scale), one panel per curve of
    ``seeds_stage.CURVES``: every model's mean over seeds with its interval as error bars, the
    oracle as a dashed black line (the noise-free floor: 0, and R² 1); the legend below.
    ``reference`` (``seeds_stage.budget_reference``): each backbone's earlier budget, on every
    row, drawn right of the largest size as a hollow diamond with its interval, on the panel
    of its target (received power)."""
    names = registry.display_names()
    targets = {label: (target, stat) for label, target, stat in seeds_stage.CURVES}
    fig, axes = plt.subplots(1, len(curves), figsize=(PAGE_WIDTH_IN, 3.0), squeeze=False)
    for ax, (panel, by_model) in zip(axes.flat, curves.items()):
        target, stat = targets.get(panel, (None, None))
        if reference and stat == "mae_vs_median" and target in seeds_stage.REFERENCE_TARGETS:
            _earlier_budget(ax, by_model, reference, target, names)
        for i, (model, points) in enumerate(by_model.items()):
            rows = np.array([p["rows"] for p in points], dtype=float)
            mean = np.array([np.nan if p["mean"] is None else p["mean"] for p in points])
            half = np.array([0.0 if p["half_width"] is None else p["half_width"]
                             for p in points])
            if model == "oracle":
                ax.plot(rows, mean, color="#000000", ls="--", lw=1.0, label=names[model])
                continue
            ax.errorbar(rows * (1 + 0.04 * (i - len(by_model) / 2)), mean, yerr=half,
                        color=colour(names[model], i), marker="o", ms=3, lw=1.0, capsize=2,
                        label=names[model])
        ax.set_xscale("log")
        sizes = [p["rows"] for p in next(iter(by_model.values()))]
        ax.set_xticks(sizes)
        ax.set_xticklabels([f"{n:,}" for n in sizes], rotation=30, ha="right")
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("training rows")
        ax.set_title(panel)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    return fig


def _earlier_budget(ax, by_model: dict, reference: dict, target: str, names: dict) -> None:
    """The earlier budget's test error of each backbone in ``reference`` (mean and interval),
    right of the largest training size, hollow, in the backbone's colour."""
    models = list(by_model)
    largest = max(p["rows"] for p in next(iter(by_model.values())))
    for j, (key, entry) in enumerate(reference.items()):
        if key not in models:
            continue
        mean, half = entry[target]
        i = models.index(key)
        ax.errorbar([largest * (1.5 + 0.08 * j)], [mean], yerr=[half], marker="D", ms=4,
                    mfc="none", color=colour(names[key], i), lw=1.0, capsize=2)
    ax.plot([], [], "D", ms=4, mfc="none", color="#000000", label="earlier budget, every row")


# The Selector's figures: the frontier's two targets (noise-free), with their axis labels.
SELECTOR_TARGETS = {"received_power_dbm": "received power,\nerror vs median [dB]",
                    "coverage_radius_m": "radius MAE [m]"}
# How the frontier marks its points: the two ends and the default operating point.
POINT_MARKERS = {"primary_only": ("s", 4, "primary only"), "backup_only": ("^", 5, "backup only"),
                 "default": ("*", 11, "default (tolerance {tolerance:g})")}


def _frontier_lines(ax, frontier: dict, split: str, target: str, x_of) -> None:
    """One line per pair of ``frontier`` on one panel (``x_of(point on split)`` against the
    point's ``target`` error), in the primary's colour; its ends and the default marked (the
    backup alone in the backup's colour)."""
    names = registry.display_names()
    for i, pair in enumerate(frontier["pairs"].values()):
        primary, backup = (names.get(pair[k], pair[k]) for k in ("primary", "backup"))
        at = [p["splits"][split] for p in pair["points"]]
        ax.plot([x_of(a) for a in at], [a[target] for a in at], color=colour(primary, i),
                lw=1.1, marker="o", ms=2.5, label=f"{primary} → {backup}")
        for point, a in zip(pair["points"], at):
            kind = "default" if point["default"] else point["kind"]
            if kind in POINT_MARKERS:
                marker, size, _ = POINT_MARKERS[kind]
                ax.plot([x_of(a)], [a[target]], marker, ms=size, mec="#000000", mew=0.6,
                        color=colour(backup if kind == "backup_only" else primary, i),
                        zorder=3)


def _marker_legend(fig, frontier: dict) -> None:
    """The pairs' lines and the point markers as one legend below the panels."""
    handles, labels = fig.axes[0].get_legend_handles_labels()
    for marker, size, text in POINT_MARKERS.values():
        handles.append(matplotlib.lines.Line2D([], [], ls="", marker=marker, ms=size,
                                               color="#FFFFFF", mec="#000000", mew=0.6))
        labels.append(text.format(tolerance=frontier["default_tolerance"]))
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)


def frontier(frontier: dict):
    """The Selector's frontier (metrics.json's ``frontier``): noise-free error of received
    power (against the median) and of the radius (rows) on each split (columns, test first)
    against the rows/s of ``predict_array`` at batch 4096 (log scale); one line per pair, from
    the primary alone through the tolerances to the backup alone, in the primary's colour; the
    ends and the default operating point marked."""
    splits = [s for s in ("test", *OOD_SPLITS) if s in frontier["splits"]]
    fig, axes = plt.subplots(len(SELECTOR_TARGETS), len(splits), figsize=(PAGE_WIDTH_IN, 4.6),
                             sharex=True, squeeze=False, layout="constrained")
    for r, (target, ylabel) in enumerate(SELECTOR_TARGETS.items()):
        for c, split in enumerate(splits):
            ax = axes[r, c]
            _frontier_lines(ax, frontier, split, target, lambda a: a["rows_per_s"])
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
            if r == 0:
                ax.set_title(split)
            if c == 0:
                ax.set_ylabel(ylabel)
            if r == len(SELECTOR_TARGETS) - 1:
                ax.set_xlabel("rows/s")
    _marker_legend(fig, frontier)
    return fig


def frontier_share(frontier: dict, split: str = "test"):
    """The same frontier on one split against the share of rows sent to the backup: one panel
    per target, one line per pair, the ends and the default marked."""
    fig, axes = plt.subplots(1, len(SELECTOR_TARGETS), figsize=(PAGE_WIDTH_IN, 3.2),
                             squeeze=False, layout="constrained")
    for ax, (target, ylabel) in zip(axes.flat, SELECTOR_TARGETS.items()):
        _frontier_lines(ax, frontier, split, target, lambda a: a["to_backup"])
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_xlabel(f"{split} rows sent to the backup")
        ax.set_ylabel(ylabel)
    _marker_legend(fig, frontier)
    return fig


def risk_coverage(rc: dict):
    """The confidence gate against perfect routing (metrics.json's ``risk_coverage``): per
    target, the mean noise-free error on the split when a share of its rows goes to the
    backup, chosen by the gate's score (forced routes first) or by an oracle that knows each
    row's errors; the oracle's curve is the floor the gate can approach."""
    names = registry.display_names()
    fig, axes = plt.subplots(1, len(SELECTOR_TARGETS), figsize=(PAGE_WIDTH_IN, 2.9),
                             squeeze=False, layout="constrained")
    share = np.asarray(rc["to_backup"], dtype=float)
    for ax, (target, ylabel) in zip(axes.flat, SELECTOR_TARGETS.items()):
        ax.plot(share, rc["gate"][target], color=colour("Selector"), lw=1.4, marker="o", ms=2.5,
                label="routed by the confidence gate's score")
        ax.plot(share, rc["oracle"][target], color="#000000", ls="--", lw=1.0,
                label="routed by an oracle that knows each row's error")
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_xlabel(f"{rc['split']} rows sent to the backup")
        ax.set_ylabel(ylabel)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=1, frameon=False,
               title=f"primary: {names.get(rc['pair'], rc['pair'])}")
    return fig


# The claim figure's groups beyond the splits: ood_multiple's rows within the trained band,
# where the paper's goals judge it (metrics.json's ``frequency_bands``).
CLAIM_BANDS = (("ood_multiple", "≤ 40 GHz"),)


def claim(results: dict, seeds: dict | None = None):
    """The backup against the MLP, in and out of distribution (the first page): noise-free
    error of received power (against the median) and radius MAE, one panel each (log scale),
    on the test split, each OOD set and ``CLAIM_BANDS``. With ``seeds``
    (``results/seeds.json`` of two or more seeds) each bar is the mean over the seeds and its
    error bar the t-interval (cut at the axis where it reaches below it)."""
    names = registry.display_names()
    models = [registry.by_role(role).key for role in ("primary", "backup")]
    runs = list((seeds or {}).get("per_seed", {}).values())
    runs, level = (runs, seeds["level"]) if len(runs) >= 2 else ([results], 0.95)
    groups = [(s, None) for s in ("test", *OOD_SPLITS) if s in results["accuracy"]]
    groups += [(s, band) for s, band in CLAIM_BANDS
               if band in results.get("frequency_bands", {}).get(s, {})]

    def error(run, split, band, model, target):
        if band is None:
            return noise_free_mae(run["accuracy"][split][model], target)
        return run["frequency_bands"][split][band][model][target]

    fig, axes = plt.subplots(1, len(SELECTOR_TARGETS), figsize=(PAGE_WIDTH_IN, 3.0),
                             squeeze=False, layout="constrained")
    width = 0.8 / len(models)
    for ax, (target, ylabel) in zip(axes.flat, SELECTOR_TARGETS.items()):
        for i, (model, role) in enumerate(zip(models, ("primary", "physics backup"))):
            ivs = [seeds_stage.interval([error(r, s, b, model, target) for r in runs], level)
                   for s, b in groups]
            ax.bar(np.arange(len(groups)) + (i - (len(models) - 1) / 2) * width,
                   [iv["mean"] for iv in ivs], width, color=colour(names[model], i),
                   label=f"{names[model]} ({role})", yerr=[iv["half_width"] or 0.0 for iv in ivs]
                   if len(runs) > 1 else None, error_kw={"lw": 0.8, "capsize": 1.5})
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(np.arange(len(groups)))
        ax.set_xticklabels([s if b is None else f"{s} {b}" for s, b in groups], rotation=30,
                           ha="right")
        ax.set_ylabel(ylabel)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    return fig
