"""Aggregation of per-volume metrics over volumes, fastMRI's way.

fastMRI's ``evaluate.py`` pushes each volume's value into a running statistic and prints
``mean ± 2·SD`` over volumes, with SD the sample standard deviation (``ddof = 1``). Groups here are
formed by any combination of row fields, normally ``(model, acquisition, acceleration)``; every
model also gets an ``all`` group over its acquisitions and accelerations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ALL", "Statistic", "group_statistics", "statistic"]

#: The value of a grouping field in a group that pools every value of that field.
ALL = "all"


@dataclass(frozen=True)
class Statistic:
    """Mean and sample standard deviation of one metric over ``n`` volumes.

    ``sd`` is NaN for a single volume (no spread can be estimated); ``two_sd`` is what fastMRI
    prints after the ``±``. ``left_out`` counts the volumes whose value was NaN or infinite (a
    failed reconstruction, or PSNR of an exact one): they are not in ``n``, and every printed
    figure says how many there were, so a model failing on some volumes cannot pass for one that
    succeeded on all.
    """

    n: int
    mean: float
    sd: float
    left_out: int = 0

    @property
    def two_sd(self) -> float:
        return 2 * self.sd

    @property
    def count(self) -> int:
        """Every value given, finite or not (the volumes scored)."""
        return self.n + self.left_out

    def to_json(self) -> dict[str, float | int | None]:
        """``{"n", "mean", "sd", "two_sd"}`` with NaN as ``None`` (JSON has no NaN)."""

        def clean(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {
            "n": self.n,
            "mean": clean(self.mean),
            "sd": clean(self.sd),
            "two_sd": clean(self.two_sd),
            "left_out": self.left_out,
        }

    def format(self, digits: int = 4) -> str:
        """``mean ± 2·SD`` with ``digits`` significant digits, as fastMRI prints it, and how many
        values were not finite (``(2 not finite)``) when any were."""
        note = f" ({self.left_out} not finite)" if self.left_out else ""
        if self.n == 0:
            return "–" + note
        if math.isnan(self.sd):
            return f"{self.mean:.{digits}g}" + note
        return f"{self.mean:.{digits}g} ± {self.two_sd:.{digits}g}" + note


def statistic(values: Iterable[float]) -> Statistic:
    """Mean and sample SD (``ddof = 1``) of the finite values; NaN and inf are left out and counted."""
    given = list(values)
    array = np.asarray([v for v in given if math.isfinite(v)], dtype=np.float64)
    left_out = len(given) - int(array.size)
    if array.size == 0:
        return Statistic(0, math.nan, math.nan, left_out)
    sd = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return Statistic(int(array.size), float(array.mean()), sd, left_out)


def group_statistics(
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    keys: Sequence[str] = ("model", "acquisition", "acceleration"),
) -> list[dict[str, Any]]:
    """Statistics of ``metrics`` per group of rows.

    Args:
        rows: One mapping per volume (and model) holding the ``keys`` and ``metrics`` fields.
        metrics: Names of the numeric fields to summarise.
        keys: Grouping fields; the first (the model) is always kept, and for every value of it a
            group with the other keys set to :data:`ALL` is added.

    Returns:
        One dict per group, sorted by key: the key fields, then ``{metric: Statistic}``; the pooled
        group of each model comes first among that model's groups.
    """
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        key = tuple(str(row[k]) for k in keys)
        groups.setdefault(key, []).append(row)
        pooled = (key[0], *([ALL] * (len(keys) - 1)))
        if len(keys) > 1:
            groups.setdefault(pooled, [])
            groups[pooled].append(row)
    out = []
    for key in sorted(groups, key=lambda k: (k[0], *[(v != ALL, v) for v in k[1:]])):
        members = groups[key]
        # a model with a single (acquisition, acceleration) has its pooled group equal to it: skip the copy
        if len(keys) > 1 and key[1:] == (ALL,) * (len(keys) - 1):
            distinct = {tuple(str(r[k]) for k in keys) for r in members}
            if len(distinct) == 1:
                continue
        entry: dict[str, Any] = dict(zip(keys, key))
        for metric in metrics:
            entry[metric] = statistic(float(r[metric]) for r in members if r.get(metric) is not None)
        out.append(entry)
    return out
