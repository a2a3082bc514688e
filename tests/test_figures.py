"""Every figure of the book fits the page and is legible at 100 % zoom: at most PAGE_WIDTH_IN
wide, its PNG at most twice the content column, no text below MIN_FONT_PT, and the models'
colours far apart."""
import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

import selector_results  # noqa: E402
from coverage_lib.datasets import dataset, distributions
from coverage_lib.physics import propagation
from coverage_lib.core import figure_style
from coverage_lib.training import curves
from coverage_lib.models import registry
from coverage_lib.report import figures
from coverage_lib.core.schema import OOD_SPLITS, TARGETS


@pytest.fixture(scope="module")
def frame():
    return dataset.generate(600, seed=3)


def _noisy(frame, scale):
    rng = np.random.default_rng(0)
    return frame[TARGETS] * (1 + scale * rng.standard_normal((len(frame), len(TARGETS))))


def _accuracy(seed=1):
    rng = np.random.default_rng(seed)
    models = ("oracle", "lightgbm", *registry.BACKBONES, "selector")
    return {s: {m: {t: {"mae": float(rng.uniform(0.5, 2))} for t in TARGETS} for m in models}
            for s in ("test", *OOD_SPLITS)}


def _claim_run(seed=1):
    """The accuracy (with the median errors) and the frequency bands the claim figure reads."""
    accuracy = _accuracy(seed)
    for by_model in accuracy.values():
        for by_target in by_model.values():
            for entry in by_target.values():
                entry["mae_vs_median"] = entry["mae"] / 4
    band = {m: {t: 1.0 + seed for t in TARGETS} for m in registry.BACKBONES}
    return {"accuracy": accuracy, "frequency_bands": {"ood_multiple": {"≤ 40 GHz": band}}}


def _latency():
    names = [*(b.name for b in registry.BACKBONES.values()), "Selector", "LightGBM"]
    variants = ("predict", "predict_array", "network, eager", "network, frozen TorchScript")
    return [{"model": m, "variant": v, "batch": b, "median_ms": 1.0 + i, "rows_per_s": 1e4 + i}
            for i, (m, v) in enumerate(itertools.product(names, variants)) for b in (1, 4096)]


def _curves():
    rng = np.random.default_rng(2)
    models = ("oracle", "lightgbm", *registry.BACKBONES, "selector")
    point = lambda n: {"rows": n, "mean": float(rng.uniform(0.1, 1)),  # noqa: E731
                       "half_width": float(rng.uniform(0, 0.1))}
    return {panel: {m: [point(n) for n in (5000, 15744)] for m in models}
            for panel in ("received power vs median (dB)", "radius R²", "QoS vs QoS(median SINR)")}


def _figures(frame):
    names = [b.name for b in registry.BACKBONES.values()]
    predictions = {"oracle (noise floor)": frame[TARGETS],
                   **{n: _noisy(frame, 0.01 * (i + 1)) for i, n in enumerate(names)}}
    history = {"train_loss": [0.3, 0.2, 0.1], "val_loss": [0.3, 0.2, 0.15],
               "val_mae": [0.4, 0.3, 0.2], "best_epoch": 3}
    physics_history = {**history, "train_data_loss": [0.2, 0.1, 0.05],
                       "train_physics_loss": [0.1, 0.05, 0.02]}
    axis = np.linspace(-3000, 3000, 9)
    sinr = {"physics (median)": np.linspace(-10, 30, 81),
            **{n: np.linspace(-12, 28, 81) for n in (*names, "Selector")}}
    ranges = {"distance_m": (10.0, 2500.0), "rain_rate_mmh": (0.0, 40.0),
              "frequency_ghz": (0.5, 40.0)}
    return {
        "feature histograms": lambda: distributions.feature_histograms(frame),
        "target histograms": lambda: distributions.target_histograms(frame),
        "power vs distance": lambda: distributions.received_power_vs_distance(frame),
        "training curves": lambda: curves.training_curves({names[0]: history}),
        "all training curves": lambda: figures.all_training_curves(
            {names[0]: history, names[1]: physics_history, names[2]: history}),
        "predicted vs true": lambda: figures.predicted_vs_true(frame, predictions),
        "power residuals": lambda: figures.power_residuals(frame, predictions),
        "physics curves": lambda: figures.physics_curves(
            {"CoverageMLP": lambda rows: propagation.link_budget(rows)}, ranges),
        "coverage map": lambda: figures.coverage_map(sinr, np.arange(81) % 2 == 0, axis,
                                                          2500.0),
        "accuracy bars": lambda: figures.accuracy_bars(_accuracy()),
        "accuracy bars over seeds": lambda: figures.accuracy_bars(_accuracy(), {
            "level": 0.95, "per_seed": {str(s): {"accuracy": _accuracy(s)} for s in (1, 2, 3)}}),
        "latency bars": lambda: figures.latency_bars(_latency()),
        "learning curves": lambda: figures.learning_curves(_curves()),
        "learning curves with the earlier budget": lambda: figures.learning_curves(_curves(), {
            k: {"epochs": 9, "received_power_dbm": [0.3, 0.02], "coverage_radius_m": [20, 1]}
            for k in registry.BACKBONES}),
        "Selector frontier": lambda: figures.frontier(selector_results.frontier()),
        "Selector frontier against the share": lambda: figures.frontier_share(
            selector_results.frontier()),
        "risk-coverage": lambda: figures.risk_coverage(selector_results.risk_coverage()),
        "the claim": lambda: figures.claim(_claim_run()),
        "the claim over seeds": lambda: figures.claim(_claim_run(), {
            "level": 0.95, "per_seed": {str(s): _claim_run(s) for s in (1, 2, 3)}}),
    }


FIGURES = list(_figures(dataset.generate(10, seed=0)))


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_fits_the_page_and_no_text_is_too_small(frame, name):
    figure_style.use_style()
    fig = _figures(frame)[name]()
    try:
        width_in = fig.get_size_inches()[0]
        assert width_in <= figure_style.PAGE_WIDTH_IN + 1e-9, f"{name}: {width_in} in wide"
        # the PNG a notebook shows ("retina": 2 × figure.dpi) is at most twice the column
        assert width_in * 2 * plt.rcParams["figure.dpi"] <= 2 * figure_style.CONTENT_WIDTH_PX
        assert figure_style.too_small_text(fig) == [], name
    finally:
        plt.close(fig)


def test_the_text_check_finds_small_text():
    figure_style.use_style()
    fig, ax = plt.subplots()
    ax.set_title("tiny", fontsize=figure_style.MIN_FONT_PT - 2)
    try:
        assert figure_style.too_small_text(fig) == [f"'tiny' at {figure_style.MIN_FONT_PT - 2:g} pt"]
    finally:
        plt.close(fig)


def _lab(colour):
    """CIE L*a*b* (D65) of a matplotlib colour."""
    rgb = np.array(to_rgb(colour))
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ linear / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_model_colours_stay_distinct():
    """One colour per model, every pair at least ΔE*ab 40 apart (the LightGBM orange and the
    Mamba-3 vermillion of an earlier palette were 33 apart: too close to tell)."""
    colours = {name: c for name, c in registry.colours().items() if c != "#000000"}
    assert len(colours) == len(registry.BACKBONES) + 2  # and LightGBM, the Selector
    for (a, ca), (b, cb) in itertools.combinations(colours.items(), 2):
        assert np.linalg.norm(_lab(ca) - _lab(cb)) >= 40, (a, ca, b, cb)


def test_every_figure_cell_says_what_its_figure_shows():
    """Alt text (myst-nb cell metadata ``mystnb.image.alt``) on every cell that shows a
    figure: the book's images describe themselves, not their file names."""
    import nbformat

    from conftest import REPO

    cells = [(path.name, cell) for path in sorted((REPO / "notebooks").glob("*.ipynb"))
             for cell in nbformat.read(path, 4).cells
             if cell.cell_type == "code" and ("figure_style.show(" in cell.source
                                              or "keep(figures." in cell.source)]
    assert len(cells) >= 10
    for name, cell in cells:
        alt = cell.metadata.get("mystnb", {}).get("image", {}).get("alt", "")
        assert len(alt.split()) >= 8, (name, cell.source)


def test_the_claim_figure_sets_the_backup_beside_the_mlp_on_every_set():
    figure_style.use_style()
    seeds = {"level": 0.95, "per_seed": {str(s): _claim_run(s) for s in (1, 2, 3)}}
    fig = figures.claim(_claim_run(), seeds)
    try:
        groups = ["test", *OOD_SPLITS, "ood_multiple ≤ 40 GHz"]
        for ax in fig.axes:
            assert [t.get_text() for t in ax.get_xticklabels()] == groups
            assert len(ax.patches) == 2 * len(groups)  # the MLP's and the backup's bars
        # the band's bars: the mean over the seeds (1 + seed: 2, 3, 4)
        assert fig.axes[0].patches[len(groups) - 1].get_height() == pytest.approx(3.0)
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert labels == [f"{registry.by_role('primary').name} (primary)",
                          f"{registry.by_role('backup').name} (physics backup)"]
    finally:
        plt.close(fig)
