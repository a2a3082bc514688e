"""Figures of training: the loss and validation curves of every run."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..core.figure_style import OKABE_ITO, PAGE_WIDTH_IN
from ..models.registry import colours


def training_curves(histories: dict):
    """Training loss, validation loss and validation MAE per epoch, one line per run, in one
    figure. ``histories`` maps a run's name to its history JSON (as the trainer writes it)."""
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_WIDTH_IN, 2.7))
    panels = (("train_loss", "training loss", "normalised MSE"),
              ("val_loss", "validation loss", "normalised MSE"),
              ("val_mae", "validation MAE (● best)", "normalised MAE, mean of 5 targets"))

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
