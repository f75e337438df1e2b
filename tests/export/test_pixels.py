"""Quantisation to unsigned 16-bit pixels, windows from percentiles, decimal strings ≤ 16 characters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrirecon.export.pixels import ds, quantise, window_from_percentiles


@pytest.mark.parametrize("bits", [16, 12, 8])
@pytest.mark.parametrize("scale", [1e-7, 3e-4, 1.0, 5e5])
def test_round_trip_within_half_a_step(bits: int, scale: float) -> None:
    volume = np.random.default_rng(0).random((3, 17, 11)) * scale
    q = quantise(volume, bits)
    assert q.stored.dtype == np.uint16 and q.stored.shape == volume.shape
    assert q.stored.max() == (1 << bits) - 1 and q.intercept == 0.0
    assert q.slope == pytest.approx(volume.max() / ((1 << bits) - 1))
    assert np.abs(q.real_values() - volume).max() <= q.slope / 2 * (1 + 1e-9)


def test_negative_values_use_the_intercept() -> None:
    volume = np.linspace(-2.0, 6.0, 1000).reshape(10, 10, 10)
    q = quantise(volume)
    assert q.intercept == -2.0 and q.stored.min() == 0 and q.stored.max() == 65535
    assert np.abs(q.real_values() - volume).max() <= q.slope / 2 * (1 + 1e-9)


def test_constant_zero_volume() -> None:
    q = quantise(np.zeros((2, 4, 4)))
    assert q.slope == 1.0 and not q.stored.any()
    assert window_from_percentiles(q.stored) == (0.0, 1.0)


def test_bad_bits() -> None:
    with pytest.raises(ValueError, match="bits_stored"):
        quantise(np.ones((1, 2, 2)), 17)


def test_window_covers_the_percentiles() -> None:
    stored = np.arange(10001, dtype=np.uint16)
    centre, width = window_from_percentiles(stored, 0.5, 99.5)
    assert centre == pytest.approx(5000.0) and width == pytest.approx(9900.0)
    with pytest.raises(ValueError):
        window_from_percentiles(stored, 50, 10)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300))
def test_decimal_strings_fit_in_16_characters(value: float) -> None:
    text = ds(value)
    assert len(text) <= 16
    assert float(text) == pytest.approx(value, rel=1e-7, abs=1e-300)


def test_decimal_string_examples() -> None:
    assert ds(-0.0) == "0"
    assert ds(1.4583333333333333) == "1.45833333333333"
    assert ds(9.635041617948711e-08) == "9.6350416179e-08"
