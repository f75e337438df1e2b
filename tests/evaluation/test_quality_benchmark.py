"""benchmarks.quality's bookkeeping: runs made apart (baselines, models, mask subsets) merge into one
result whose tables show only the columns every model has."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from benchmarks.quality import _prior_baselines
from benchmarks.quality_report import columns, markdown, merge


def _figures(psnr: float) -> dict[str, float]:
    return {
        "psnr": psnr,
        "head_psnr": psnr - 2,
        "ssim": 0.8,
        "head_ssim": 0.7,
        "nmse": 0.01,
        "lesions_kept": 1,
        "lesions": 2,
        "contrast_kept": 0.9,
        "seconds_per_slice": 0.5,
    }


def _run(path: Path, labels: list[str], masks: list[str], **args: object) -> Path:
    data = {
        "args": {"data_dir": "d", "quick": False, "cs_iterations": 100, **args},
        "tuning": {m: {"chosen": [{"regularization": 0.005}, {}]} for m in masks if "CS" in labels},
        "sets": {"real": {label: {m: _figures(30.0 + i) for i, m in enumerate(masks)} for label in labels}},
    }
    path.write_text(json.dumps(data))
    return path


def test_runs_made_apart_merge_and_show_shared_columns(tmp_path: Path) -> None:
    a = _run(tmp_path / "a.json", ["CS", "SENSE", "zero-filled"], ["random 4x", "equispaced 4x"])
    b = _run(tmp_path / "b.json", ["CS", "SENSE", "zero-filled"], ["equispaced 8x"])
    models = _run(tmp_path / "m.json", ["cirim"], ["equispaced 4x", "random 4x"])
    merged = merge([str(a), str(b), str(models)])
    assert set(merged["tuning"]) == {"random 4x", "equispaced 4x", "equispaced 8x"}
    real = merged["sets"]["real"]
    assert set(real) == {"CS", "SENSE", "zero-filled", "cirim"}
    assert list(real["CS"]) == ["random 4x", "equispaced 4x", "equispaced 8x"]
    # the benchmark's column order, and only the masks every model was scored on
    assert columns(real) == ["equispaced 4x", "random 4x"]
    table = markdown(merged)
    assert "| model | equispaced 4x | random 4x | s/slice |" in table
    assert "| cirim | 28.00 / 0.700 | 29.00 / 0.700 | 0.50 |" in table


def test_a_merge_refuses_runs_of_other_sets_or_other_weights_under_one_label(tmp_path: Path) -> None:
    a = _run(tmp_path / "a.json", ["CS"], ["random 4x"])
    quick = _run(tmp_path / "q.json", ["CS"], ["equispaced 4x"], quick=True)
    with pytest.raises(SystemExit, match=r"q\.json was run with quick=True, .*a\.json with False"):
        merge([str(a), str(quick)])
    first, second = (
        _run(tmp_path / "m1.json", ["mine"], ["random 4x"]),
        _run(tmp_path / "m2.json", ["mine"], ["Poisson 8x"]),
    )
    for path, digest in ((first, "aa" * 32), (second, "bb" * 32)):
        data = json.loads(path.read_text())
        path.write_text(json.dumps({**data, "models": {"mine": {"source": "x", "weights_sha256": digest}}}))
    with pytest.raises(SystemExit, match=r"'mine' has other weights in .*m2\.json than in .*m1\.json"):
        merge([str(first), str(second)])
    # a merged file records its runs' settings, so that --baselines can check them
    merged = merge([str(a), str(first)])
    assert merged["run_args"] == {"data_dir": "d", "quick": False, "cs_iterations": 100}


def test_reused_baselines_must_come_from_the_same_sets(tmp_path: Path) -> None:
    a = _run(tmp_path / "a.json", ["CS", "SENSE", "zero-filled"], ["random 4x"])
    b = _run(tmp_path / "b.json", ["CS", "SENSE", "zero-filled"], ["Poisson 8x"])
    args = argparse.Namespace(baselines=[str(a), str(b)], data_dir="d", quick=False, cs_iterations=100)
    prior = _prior_baselines(args)
    assert set(prior["tuning"]) == {"random 4x", "Poisson 8x"}
    assert set(prior["sets"]["real"]["CS"]) == {"random 4x", "Poisson 8x"}
    other = argparse.Namespace(baselines=[str(a)], data_dir="d", quick=False, cs_iterations=50)
    with pytest.raises(SystemExit, match="cs_iterations=100"):
        _prior_baselines(other)


def test_the_export_ships_only_the_weights_that_were_scored(tmp_path: Path) -> None:
    import torch

    from benchmarks.pretrained import _check_scored
    from benchmarks.quality import model_records

    scored, other = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    records = model_records(["mine=runs/x/checkpoints/last.ckpt"], [("mine", scored)])
    assert records["mine"]["source"] == "runs/x/checkpoints/last.ckpt"
    models = _run(tmp_path / "m.json", ["mine"], ["equispaced 4x"])
    data = json.loads(models.read_text())
    models.write_text(json.dumps({**data, "models": records}))
    baselines = _run(tmp_path / "a.json", ["CS"], ["equispaced 4x"])
    merged = tmp_path / "merged.json"
    merged.write_text(json.dumps(merge([str(baselines), str(models)])))  # the record survives a merge
    results = json.loads(merged.read_text())
    _check_scored(results, merged, "mine", tmp_path / "last.ckpt", scored)
    with pytest.raises(SystemExit, match="other weights than the ones"):
        _check_scored(results, merged, "mine", tmp_path / "best.ckpt", other)
    with pytest.raises(SystemExit, match="does not record which weights 'theirs'"):
        _check_scored(results, merged, "theirs", tmp_path / "best.ckpt", scored)
    # the models' run alone has no CS to put beside them on the card
    with pytest.raises(SystemExit, match=r"no CS figures beside 'mine' for real equispaced 4x"):
        _check_scored(json.loads(models.read_text()), models, "mine", tmp_path / "last.ckpt", scored)


def test_score_lists_the_lesions_it_did_not_keep(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reconstruction that halves one lesion's contrast and keeps the other's: one kept, and the
    lost one recorded with its volume, label, size and P = 0.5."""
    import numpy as np

    from benchmarks import quality

    yy, xx = np.mgrid[:64, :64]
    labels = np.zeros((1, 64, 64), dtype=np.int16)
    labels[0][(yy - 20) ** 2 + (xx - 20) ** 2 <= 16] = 1
    labels[0][(yy - 44) ** 2 + (xx - 44) ** 2 <= 16] = 2
    rng = np.random.default_rng(0)
    target = (1.0 + 0.01 * rng.standard_normal((1, 64, 64))).astype(np.float32)
    target[labels > 0] += 1.0  # two hyperintense lesions, contrast 1
    recon = target.copy()
    recon[labels == 1] -= 0.5  # lesion 1 keeps half its contrast
    volume = quality.Volume(Path("vol_a.h5"), target, labels, np.ones_like(target, dtype=bool))
    monkeypatch.setattr(quality, "reconstruct", lambda model, vol, mask: (recon, 0.01))

    figures = quality.score([volume], model=None, mask=quality.MASKS[0])  # type: ignore[arg-type]

    assert (figures["lesions_kept"], figures["lesions"]) == (1, 2)
    [lost] = figures["lost_lesions"]
    assert (lost["volume"], lost["lesion"], lost["pixels"]) == ("vol_a", 1, int((labels == 1).sum()))
    assert lost["preservation"] == pytest.approx(0.5, abs=0.02)
    assert lost["reference_cnr"] > 10 and lost["reference_contrast"] == pytest.approx(1.0, abs=0.02)
    json.dumps(figures)  # the record goes into the JSON as it is


def test_refresh_replaces_a_shipped_cards_figures_and_keeps_its_weights(tmp_path: Path) -> None:
    import shutil

    from benchmarks.pretrained import refresh
    from mrirecon.models.io import weights_sha256
    from mrirecon.models.pretrained import PRETRAINED, WEIGHTS, read_safetensors_model

    shipped = tmp_path / "cirim.safetensors"
    shutil.copy(WEIGHTS / PRETRAINED["cirim-brain"].file, shipped)
    _, model, before = read_safetensors_model(shipped)
    digest = weights_sha256(model)
    results = _run(tmp_path / "q.json", ["cirim-brain", "CS"], ["equispaced 4x"])
    data = json.loads(results.read_text())
    results.write_text(
        json.dumps({**data, "models": {"cirim-brain": {"source": "cirim-brain", "weights_sha256": digest}}})
    )
    args = argparse.Namespace(name="cirim-brain", quality=str(results), label=None, output=str(shipped))
    refresh(args)
    _, again, after = read_safetensors_model(shipped)
    assert weights_sha256(again) == digest
    assert after["quality"]["real"]["equispaced 4x"]["head_psnr"] == 28.0  # _figures(30.0): head 28
    assert after["training"] == before["training"] and after["headline"] != before["headline"]
    data["models"] = {"cirim-brain": {"source": "x", "weights_sha256": "00" * 32}}
    results.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match="other weights"):
        refresh(args)


def test_a_models_only_run_skips_the_figure_and_a_merge_draws_its_scored_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The figure shows CS beside the models: a --models-only run (no CS tuned) says so instead of
    an IndexError after its JSON; a merge draws the models its runs scored (no --model given)."""
    import benchmarks.quality as quality

    models_only = {
        "sets": json.loads(_run(tmp_path / "m.json", ["cirim"], ["random 4x"]).read_text())["sets"]
    }
    monkeypatch.setattr(quality, "run", lambda args: {**models_only, "tuning": {}, "models": {}})
    quality.main(["--models-only", "--model", "cirim", "--output", str(tmp_path / "q.json")])
    assert "no figure: it shows CS beside the models" in capsys.readouterr().out
    assert (tmp_path / "q.json").is_file()

    class Drawn(Exception):
        pass

    def learned(specs: list[str]) -> None:
        raise Drawn(specs)

    a = _run(tmp_path / "a.json", ["CS", "zero-filled"], ["random 4x"])
    scored = json.loads(_run(tmp_path / "b.json", ["cirim"], ["random 4x"]).read_text())
    (tmp_path / "b.json").write_text(
        json.dumps({**scored, "models": {"cirim": {"source": "x.ckpt", "weights_sha256": "0"}}})
    )
    monkeypatch.setattr(quality, "learned_models", learned)
    with pytest.raises(Drawn) as drawn:
        quality.main(["--merge", str(a), str(tmp_path / "b.json"), "--output", str(tmp_path / "merged.json")])
    assert drawn.value.args[0] == ["cirim=x.ckpt"]


def test_the_noise_ceiling_keeps_every_lesion_without_noise_and_loses_them_in_it(tmp_path: Path) -> None:
    """benchmarks.lesion_ceiling: a second draw of a vanishing noise keeps every lesion at P = 1;
    a draw of a hundred times the recorded noise power loses lesions."""
    import h5py

    from benchmarks.lesion_ceiling import ceiling
    from benchmarks.quality import TEST_OPTIONS, load_volumes
    from mrirecon.data.realistic_dataset import simulate_realistic_dataset

    options = dataclasses.replace(TEST_OPTIONS, rows=(128, 128), coils=(4, 4), lesion_count=(6, 6))
    simulate_realistic_dataset(
        tmp_path, anatomy="mni", volumes=1, slices=2, seed=5, options=options, split=(0, 0, 1), progress=False
    )
    (path,) = tmp_path.glob("*.h5")
    with h5py.File(path, "r") as handle:
        real = handle.attrs["mrirecon_noise_covariance_real"]
        imag = handle.attrs["mrirecon_noise_covariance_imag"]
    figures = {}
    for scale in (1e-8, 100.0):
        with h5py.File(path, "r+") as handle:
            handle.attrs["mrirecon_noise_covariance_real"] = real * scale
            handle.attrs["mrirecon_noise_covariance_imag"] = imag * scale
        figures[scale] = ceiling(load_volumes(tmp_path), draws=2)
    quiet, loud = figures[1e-8], figures[100.0]
    assert quiet["lesions"] >= 3 and quiet["kept_per_draw"] == [quiet["lesions"]] * 2
    assert abs(quiet["contrast_kept"] - 1) < 1e-3
    assert loud["kept_min"] < loud["lesions"]
