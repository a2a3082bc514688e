"""Widgets over the 13 features of one link, spanning the physical domain (``domain``), for
the interactive notebook. ipywidgets is imported only when they are built."""
from __future__ import annotations

import math

from ..core import domain, validation
from ..core.schema import FEATURES

LOG_SCALE = ("frequency_ghz", "distance_m")  # sliders on a log10 axis


# The interactive page's parameters (notebooks/06_interactive.ipynb), each with its rule.
PARAMETERS = {"interactive": validation.boolean}

def link_controls(link: dict) -> dict:
    """{feature: widget} starting at ``link``'s values, over the whole physical domain,
    out-of-distribution ranges included; scenario, LOS and bandwidth as drop-downs."""
    import ipywidgets as w

    controls = {}
    for feature in FEATURES:
        low, high = domain.DOMAIN[feature]
        label = domain.LABELS[feature]
        if feature == "scenario":
            controls[feature] = w.Dropdown(options=[(n, s) for s, n in
                                                    domain.SCENARIO_NAMES.items()],
                                           value=int(link[feature]), description=label)
        elif feature == "los":
            controls[feature] = w.Dropdown(options=[("NLOS", 0), ("LOS", 1)],
                                           value=int(link[feature]), description=label)
        elif feature == "bandwidth_mhz":
            controls[feature] = w.Dropdown(options=list(domain.BANDWIDTHS_MHZ),
                                           value=float(link[feature]), description=label)
        elif feature in LOG_SCALE:
            controls[feature] = w.FloatLogSlider(value=link[feature], base=10,
                                                 min=math.log10(low), max=math.log10(high),
                                                 step=0.01, description=label)
        else:
            controls[feature] = w.FloatSlider(value=link[feature], min=low, max=high,
                                              description=label)
    return controls


def explorer(compare, link: dict):
    """The widgets of ``link_controls`` beside the table ``compare(link)`` gives for the link
    they set, redrawn on every change (ipywidgets' ``interactive_output``)."""
    import ipywidgets as w
    from IPython.display import display

    controls = link_controls(link)
    widgets = list(controls.values())
    output = w.interactive_output(lambda **chosen: display(compare(chosen)), controls)
    return w.VBox([w.HBox([w.VBox(widgets[:7]), w.VBox(widgets[7:])]), output])
