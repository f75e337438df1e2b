"""The demo's table pools every test volume of a model, whatever the contrasts in the test set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mrirecon.evaluation.aggregate import group_statistics
from mrirecon.evaluation.evaluate import EvaluationResult
from mrirecon.pipeline.report import results_rows


def _result(rows: list[dict[str, Any]], lesion_rows: list[dict[str, Any]]) -> EvaluationResult:
    """An evaluation of these per-volume (and per-lesion) rows, grouped as evaluate groups them."""
    return EvaluationResult(
        output_dir=Path(),
        metrics_csv=Path("m.csv"),
        summary_json=Path("s.json"),
        report_html=Path("r.html"),
        lesions_csv=None,
        rows=rows,
        lesion_rows=lesion_rows,
        groups=group_statistics(rows, ["ssim", "psnr", "nmse"]),
        lesion_groups=group_statistics(lesion_rows, ["preserved_fraction", "preservation"])
        if lesion_rows
        else [],
        sources=[],
    )


def test_the_table_pools_volumes_of_every_contrast() -> None:
    rows = [
        {
            "model": "CIRIM",
            "acquisition": "AXT1",
            "acceleration": "4",
            "ssim": 0.6,
            "psnr": 27.0,
            "nmse": 0.1,
        },
        {
            "model": "CIRIM",
            "acquisition": "AXFLAIR",
            "acceleration": "4",
            "ssim": 0.8,
            "psnr": 26.0,
            "nmse": 0.02,
        },
        {
            "model": "CIRIM",
            "acquisition": "AXT2",
            "acceleration": "4",
            "ssim": 0.9,
            "psnr": 31.0,
            "nmse": 0.01,
        },
    ]
    lesion_rows = [
        {"model": "CIRIM", "acquisition": a, "acceleration": "4", "preserved_fraction": p, "preservation": c}
        for a, p, c in (("AXT1", 1.0, 1.0), ("AXT1", 0.0, 0.5), ("AXFLAIR", 1.0, 0.9), ("AXT2", 0.0, 0.6))
    ]
    result = _result(rows, lesion_rows)
    (row,) = results_rows(result, ["CIRIM"], {"cirim": 2.0}, ["cirim"])
    assert row["volumes"] == 3
    assert abs(row["ssim"] - (0.6 + 0.8 + 0.9) / 3) < 1e-12
    assert abs(row["psnr"] - 28.0) < 1e-12
    assert (row["lesions"], row["lesions_preserved"]) == (4, 2)
    assert abs(row["preservation"] - 0.75) < 1e-12


def test_one_contrast_gives_the_rows_too() -> None:
    rows = [
        {"model": "CS", "acquisition": "AXT1", "acceleration": "4", "ssim": s, "psnr": 20.0, "nmse": 0.1}
        for s in (0.5, 0.7)
    ]
    result = _result(rows, [])
    (row,) = results_rows(result, ["CS"], {}, ["cs_l1wavelet"])
    assert row["volumes"] == 2 and abs(row["ssim"] - 0.6) < 1e-12


def test_the_table_says_how_many_lesions_it_left_out() -> None:
    from mrirecon.pipeline.demo import DemoSettings
    from mrirecon.pipeline.report import results_table

    rows = [{"model": "CIRIM", "ssim": 0.9, "psnr": 30.0, "nmse": 0.01, "volumes": 2, "lesions": 21}]
    rows[0].update(lesions_preserved=13, preservation=0.95, seconds_per_volume=1.0)
    lines = results_table(rows, DemoSettings(), not_visible=5)
    assert "13/21" in lines[3]
    assert lines[-1].startswith("(5 more lesions are not visible in the reference")
    assert not results_table(rows, DemoSettings())[-1].startswith("(")
