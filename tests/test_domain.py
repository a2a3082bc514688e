"""One table of the physical domain (coverage_lib.core.domain) feeds the draws, the parameter rules,
the radius search, the interactive sliders and the plots' sweeps."""
import math

import numpy as np
import pytest

from coverage_lib.datasets import dataset
from coverage_lib.physics import propagation, sampling
from coverage_lib.core import domain, validation
from coverage_lib.core.schema import FEATURES
from coverage_lib.report.link_widgets import link_controls
from coverage_lib.report.figures import REFERENCE_LINK


def test_every_feature_has_a_range_and_a_label():
    assert set(domain.DOMAIN) == set(FEATURES) == set(domain.LABELS)


def test_draws_fill_each_scenarios_range_and_no_more():
    links = sampling.draw_features(60_000, np.random.default_rng(1))
    for scenario in domain.SCENARIO_NAMES:
        rows = links[links["scenario"] == scenario]
        for feature, ranges in domain.BY_SCENARIO.items():
            low, high = ranges[scenario]
            values = rows[feature].to_numpy()
            assert values.min() >= low and values.max() <= high, (feature, scenario)
            assert values.max() - values.min() >= 0.9 * (high - low), (feature, scenario)
    for feature, (low, high) in domain.COMMON.items():
        assert links[feature].min() >= low and links[feature].max() <= high, feature
    assert set(links["bandwidth_mhz"]) == set(domain.BANDWIDTHS_MHZ)


def test_parameter_rules_radius_search_and_sliders_use_the_table():
    for name, feature in (("id_frequency_ghz", "frequency_ghz"),
                          ("id_rain_rate_mmh", "rain_rate_mmh"), ("id_distance_m", "distance_m")):
        low, high = domain.DOMAIN[feature]
        dataset.PARAMETERS[name](name, [low, high])  # the whole domain is allowed
        with pytest.raises(ValueError, match=f"{low} ≤ low < high ≤ {high}"):
            dataset.PARAMETERS[name](name, [low, high * 1.01])
    assert propagation.MAX_DISTANCE_M == {s: r[1] for s, r in domain.BY_SCENARIO["distance_m"].items()}
    controls = link_controls(REFERENCE_LINK)
    for feature, widget in controls.items():
        if hasattr(widget, "min"):
            low, high = domain.DOMAIN[feature]
            log = feature in ("frequency_ghz", "distance_m")
            assert (widget.min, widget.max) == pytest.approx(
                (math.log10(low), math.log10(high)) if log else (low, high)), feature
