"""The parity cases and their inputs, shared by :mod:`benchmarks.parity` (which writes the goldens
with the authors' code) and ``tests/models/test_parity.py`` (which rebuilds the large inputs and
reads the goldens without it).

Each :class:`Case` names an authors' module at a configuration and a seed; :func:`make_inputs`
rebuilds its inputs from the seed alone, :func:`inputs_digest` checks a rebuilt input, and
:func:`pack_parameters` / :func:`unpack_parameters` store parameters and gradients as four arrays.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CASES",
    "VARNET_OPTIONS",
    "Case",
    "area_mask",
    "inputs_digest",
    "line_mask",
    "make_inputs",
    "output_grid",
    "pack_parameters",
    "unpack_parameters",
]


@dataclass(frozen=True)
class Case:
    """One golden: an authors' module at a configuration, on one input."""

    name: str
    family: str  # "atommic" | "mridc" | "direct" | "fastmri"
    height: int
    width: int
    coils: int
    mask: str  # "line" | "2d"
    seed: int
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def full_outputs(self) -> bool:
        """Small cases store every estimate whole; large ones on :func:`output_grid`."""
        return self.height * self.width <= 64 * 64


def _atommic(name: str, cell: str, cascades: int, size: tuple[int, int], mask: str, seed: int) -> Case:
    options = {"recurrent_layer": cell, "num_cascades": cascades}
    return Case(name, "atommic", *size, 4 if size[0] < 64 else 3, mask, seed, options)


def _direct(name: str, config: str, size: tuple[int, int], mask: str, seed: int) -> Case:
    return Case(name, "direct", *size, 4 if size[0] < 64 else 3, mask, seed, {"config": config})


#: fastMRI's E2E-VarNet at reduced channels: 2 cascades whose U-Nets have 2 pools (33 × 27 is
#: padded to 48 × 32, the multiple of 16 fastMRI's NormUnet pads to whatever the pools, where
#: 2**pools would give 36 × 28) and a sensitivity U-Net with 3 (40 × 32 with 2**pools). A centre of
#: 4 lines; the seed puts the equispaced lines (offset 2) clear of it, so the fully sampled run around
#: the centre (mrirecon's calibration block) is fastMRI's symmetric block of ``num_low_frequencies``.
VARNET_OPTIONS = {
    "num_cascades": 2,
    "chans": 4,
    "pools": 2,
    "sens_chans": 2,
    "sens_pools": 3,
    "centre_fraction": 0.16,
}
SMALL = (33, 27)
LARGE = (218, 170)
CASES: dict[str, Case] = {
    c.name: c
    for c in (
        _atommic("atommic_rim_gru_33x27_line", "GRU", 1, SMALL, "line", 11),
        _atommic("atommic_rim_mgu_33x27_2d", "MGU", 1, SMALL, "2d", 12),
        _atommic("atommic_rim_indrnn_33x27_line", "IndRNN", 1, SMALL, "line", 13),
        _atommic("atommic_cirim_33x27_2d", "IndRNN", 5, SMALL, "2d", 14),
        Case("mridc_cirim_33x27_line", "mridc", *SMALL, 4, "line", 15, {"num_cascades": 5}),
        _atommic("atommic_rim_gru_218x170_2d", "GRU", 1, LARGE, "2d", 16),
        _atommic("atommic_cirim_218x170_line", "IndRNN", 5, LARGE, "line", 17),
        _direct("direct_rvn_33x27_line", "base_recurrentvarnet.yaml", SMALL, "line", 21),
        _direct("direct_rvn_norsi_33x27_2d", "ablation/base_recurrentvarnet_noRSI.yaml", SMALL, "2d", 22),
        _direct("direct_rvn_noser_33x27_2d", "ablation/base_recurrentvarnet_noSER.yaml", SMALL, "2d", 23),
        _direct(
            "direct_rvn_shared_33x27_line", "ablation/base_recurrentvarnet_shared.yaml", SMALL, "line", 24
        ),
        _direct("direct_rvn_218x170_2d", "base_recurrentvarnet.yaml", LARGE, "2d", 25),
        _direct(
            "direct_rvn_noser_218x170_line", "ablation/base_recurrentvarnet_noSER.yaml", LARGE, "line", 26
        ),
        Case("fastmri_varnet_33x27_line", "fastmri", *SMALL, 4, "line", 31, VARNET_OPTIONS),
    )
}


def line_mask(
    width: int, rng: np.random.Generator, acceleration: int = 4, centre: float = 0.08
) -> np.ndarray:
    """Columns: a fully sampled centre block plus every ``acceleration``-th column from a random offset."""
    mask = np.zeros(width, dtype=bool)
    low = max(1, round(width * centre))
    start = (width - low + 1) // 2
    mask[start : start + low] = True
    mask[int(rng.integers(acceleration)) :: acceleration] = True
    return mask


def area_mask(height: int, width: int, rng: np.random.Generator, acceleration: int = 4) -> np.ndarray:
    """A 2-D mask: Bernoulli(1/acceleration) samples plus a fully sampled centre box."""
    mask = rng.random((height, width)) < 1.0 / acceleration
    bh, bw = max(2, round(height * 0.08)), max(2, round(width * 0.08))
    top, left = (height - bh + 1) // 2, (width - bw + 1) // 2
    mask[top : top + bh, left : left + bw] = True
    return mask


def make_inputs(case: Case, centered: bool) -> dict[str, np.ndarray]:
    """The inputs of a case, from its seed alone (NumPy's PCG64).

    Returns ``masked_kspace`` and ``coil_maps`` ``(1, C, H, W)`` complex64 (Σ_c |S_c|² = 1) and
    ``mask``, boolean in mrirecon's layout: ``(1, 1, 1, W)`` for a line mask (centre width from the
    case's ``centre_fraction`` option, default 0.08), ``(1, 1, H, W)`` otherwise. With
    ``centered=False`` the mask is moved to the uncentred k-space layout.
    """
    rng = np.random.default_rng(case.seed)
    shape = (1, case.coils, case.height, case.width)

    def cplx() -> np.ndarray:
        return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)

    maps = cplx()
    maps /= np.sqrt((np.abs(maps) ** 2).sum(axis=1, keepdims=True))
    kspace = cplx()
    if case.mask == "line":
        centre = float(case.options.get("centre_fraction", 0.08))
        mask = line_mask(case.width, rng, centre=centre).reshape(1, 1, 1, case.width)
    elif case.mask == "2d":
        mask = area_mask(case.height, case.width, rng).reshape(1, 1, case.height, case.width)
    else:
        raise ValueError(f"unknown mask kind {case.mask!r}")
    if not centered:
        mask = np.fft.ifftshift(mask, axes=(-2, -1))
    return {
        "masked_kspace": (kspace * mask).astype(np.complex64),
        "coil_maps": maps.astype(np.complex64),
        "mask": np.ascontiguousarray(mask),
    }


def inputs_digest(inputs: dict[str, np.ndarray]) -> str:
    """SHA-256 of the inputs' bytes (k-space, coil maps, mask), to check a rebuilt input."""
    digest = hashlib.sha256()
    for key in ("masked_kspace", "coil_maps", "mask"):
        digest.update(np.ascontiguousarray(inputs[key]).tobytes())
    return digest.hexdigest()


def output_grid(size: int, edge: int = 4, stride: int = 12) -> np.ndarray:
    """Indices kept of a large estimate along one axis: ``edge`` at each border and every ``stride``-th."""
    return np.array(sorted({*range(edge), *range(edge, size - edge, stride), *range(size - edge, size)}))


def pack_parameters(
    names: Sequence[str], states: Sequence[np.ndarray], gradients: Sequence[np.ndarray]
) -> dict[str, np.ndarray]:
    """Parameters and their gradients as four arrays (one entry per tensor would bloat the file).

    ``params/names`` holds ``"<checkpoint key>/<state-dict key>"``, ``params/shapes`` one row
    ``[ndim, d0, d1, d2, d3]`` per tensor, ``params/state`` and ``params/grad`` the float32 values
    concatenated in that order.
    """
    shapes = np.zeros((len(names), 5), dtype=np.int64)
    for i, state in enumerate(states):
        if state.ndim > 4:
            raise ValueError(f"{names[i]}: more than four dimensions")
        shapes[i, 0] = state.ndim
        shapes[i, 1 : 1 + state.ndim] = state.shape
    return {
        "params/names": np.array(list(names)),
        "params/shapes": shapes,
        "params/state": np.concatenate([s.astype(np.float32).ravel() for s in states]),
        "params/grad": np.concatenate([g.astype(np.float32).ravel() for g in gradients]),
    }


def unpack_parameters(arrays: Any) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """``{"state"|"grad": {checkpoint key: {state-dict key: array}}}`` from :func:`pack_parameters`."""
    result: dict[str, dict[str, dict[str, np.ndarray]]] = {"state": {}, "grad": {}}
    offset = 0
    for name, row in zip(arrays["params/names"], arrays["params/shapes"]):
        shape = tuple(int(d) for d in row[1 : 1 + int(row[0])])
        size = int(np.prod(shape)) if shape else 1
        top, key = str(name).split("/", 1)
        for kind in ("state", "grad"):
            values = arrays[f"params/{kind}"][offset : offset + size].reshape(shape)
            result[kind].setdefault(top, {})[key] = values
        offset += size
    return result
