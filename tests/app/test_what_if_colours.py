"""The what-if change map's colours, computed for every hex at once: the same as the colour
worked out hex by hex (the reference below, the code they replaced), on any changes."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from app.components.what_if import FEWER_RGB, MORE_RGB, NEUTRAL_RGB, change_colours


def reference_colour(delta: float, scale: float) -> list[int]:
    weight = min(abs(delta) / scale, 1.0) if scale > 0 else 0.0
    end = MORE_RGB if delta > 0 else FEWER_RGB
    rgb = [round(n + (e - n) * weight) for n, e in zip(NEUTRAL_RGB, end, strict=True)]
    return [*rgb, 210]


changes = arrays(
    np.float64,
    st.integers(0, 60),
    elements=st.one_of(
        st.floats(-5, 5, allow_nan=False), st.sampled_from([0.0, -0.0, 0.5, -0.5, 1e-12])
    ),
)


@given(changes)
def test_colours_match_the_hex_by_hex_reference(deltas: np.ndarray) -> None:
    scale = float(np.quantile(np.abs(deltas), 0.98)) if len(deltas) else 0.0
    assert change_colours(deltas) == [reference_colour(float(d), scale) for d in deltas]


def test_the_largest_changes_take_the_end_colours_and_none_is_grey() -> None:
    colours = change_colours(np.array([-3.0, 0.0, 3.0] + [0.1] * 97))
    assert colours[0] == [*FEWER_RGB, 210]
    assert colours[1] == [*NEUTRAL_RGB, 210]
    assert colours[2] == [*MORE_RGB, 210]
    assert all(isinstance(v, int) for colour in colours for v in colour)  # plain JSON ints
