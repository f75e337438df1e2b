"""The slice checks and k-space energies of mrirecon.data.raw that the loader's normalisation uses."""

from __future__ import annotations

import numpy as np
import pytest

from mrirecon.data.raw import kspace_energy


def test_kspace_energy_per_column_and_per_location() -> None:
    rng = np.random.default_rng(0)
    kspace = (rng.standard_normal((3, 5, 7)) + 1j * rng.standard_normal((3, 5, 7))).astype(np.complex64)
    power = np.abs(kspace.astype(np.complex128)) ** 2
    np.testing.assert_allclose(kspace_energy(kspace, per_column=True), power.sum((0, 1)), rtol=1e-5)
    np.testing.assert_allclose(kspace_energy(kspace, per_column=False), power.sum(0), rtol=1e-5)
    huge = np.full((2, 3, 4), 1e30 + 1e30j, dtype=np.complex64)  # finite, Σ|y|² overflows float32
    assert kspace_energy(huge, per_column=True) == pytest.approx(np.full(4, 12e60), rel=1e-6)
    for tiny in (1e-21, 1e-24, 1e-30):  # float32 squares are subnormal or 0: computed in float64
        small = (kspace * np.float32(tiny)).astype(np.complex64)
        exact = np.abs(small.astype(np.complex128)) ** 2
        for per_column, axes in ((True, (0, 1)), (False, 0)):
            energy = kspace_energy(small, per_column=per_column)
            np.testing.assert_allclose(energy, exact.sum(axes), rtol=1e-5)
    for bad in (np.nan, np.inf):
        broken = kspace.copy()
        broken[1, 2, 3] = bad
        assert not np.isfinite(kspace_energy(broken, per_column=True).sum())
    with pytest.raises(ValueError, match="complex64"):
        kspace_energy(kspace.astype(np.complex128), per_column=True)
