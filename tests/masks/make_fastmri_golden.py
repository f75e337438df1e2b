"""Regenerate ``fastmri_golden.json``: masks drawn by fastMRI 0.3.0 itself, the oracle for our masks.

Not run by the test suite. Needs ``pip install --no-deps fastmri==0.3.0`` (its ``subsample`` module
only needs numpy and torch). fastMRI's shapes are real views ``(..., W, 2)``; ours are ``(..., H, W)``.

    python tests/masks/make_fastmri_golden.py > tests/masks/fastmri_golden.json
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np


def load_subsample():
    import fastmri

    path = Path(fastmri.__file__).parent / "data" / "subsample.py"
    spec = importlib.util.spec_from_file_location("fastmri_subsample", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CLASSES = {
    "random": "RandomMaskFunc",
    "equispaced": "EquiSpacedMaskFunc",
    "equispaced_fraction": "EquispacedMaskFractionFunc",
    "magic": "MagicMaskFunc",
    "magic_fraction": "MagicMaskFractionFunc",
}

CASES: list[tuple[int, list[float], list[int], int, list[int | str | None], int | None, bool]] = [
    # (width, center_fractions, accelerations, init seed, call seeds, offset, allow_any_combination)
    (368, [0.08], [4], 0, [None, 1, "file1000001.h5"], None, False),
    (368, [0.04], [8], 42, [None, None, 7], None, False),
    (372, [0.08, 0.04], [4, 8], 3, [None, None, None, "file_brain_AXT2_200_2000019.h5"], None, False),
    (320, [0.08, 0.04], [4, 8], 5, [None, 11], None, True),
    (201, [0.1], [3], 9, [None, 2], None, False),
    (368, [0.08], [4], 0, [None], 2, False),
    (640, [0.04], [8], 123, [None, "file1002545.h5"], None, False),
]


def main() -> None:
    subsample = load_subsample()
    out = []
    for name, cls_name in CLASSES.items():
        cls = getattr(subsample, cls_name)
        for width, cfs, accs, seed, call_seeds, offset, any_comb in CASES:
            func = cls(cfs, accs, allow_any_combination=any_comb, seed=seed)
            draws = []
            for call_seed in call_seeds:
                s = tuple(map(ord, call_seed)) if isinstance(call_seed, str) else call_seed
                mask, num_low = func((1, 16, width, 2), offset=offset, seed=s)
                cols = np.flatnonzero(mask.numpy().reshape(-1)).tolist()
                draws.append({"call_seed": call_seed, "columns": cols, "num_low": int(num_low)})
            out.append(
                {
                    "type": name,
                    "width": width,
                    "center_fractions": cfs,
                    "accelerations": accs,
                    "seed": seed,
                    "offset": offset,
                    "allow_any_combination": any_comb,
                    "draws": draws,
                }
            )
    json.dump({"fastmri_version": "0.3.0", "cases": out}, sys.stdout, indent=None)


if __name__ == "__main__":
    main()
