"""``mrirecon train`` end to end on data the simulator writes: SliceDataset, manifests, resume, outputs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner

from mrirecon_cli.main import cli


def _config(data_dir: Path) -> dict[str, Any]:
    return {
        "model": {"name": "tiny", "params": {"channels": 4}},
        "data": {
            "manifest": str(data_dir / "manifest.csv"),
            "synthetic": {"volumes": 4, "slices": 2, "size": 32, "coils": 2, "seed": 5},
            "mask": {"type": "random", "center_fractions": [0.08], "accelerations": [4]},
            "num_workers": 1,
        },
        "optim": {"lr": 3e-3, "scheduler": "step", "step_size": 3, "gamma": 0.5},
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 2,
            "progress_bar": False,
            "seed": 3,
            "log_every_n_steps": 1,
        },
    }


def _train(*args: str) -> Any:
    result = CliRunner().invoke(cli, ["train", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.mark.slow
def test_train_simulates_trains_tests_and_resumes_exactly(tiny_registered: str, tmp_path: Path) -> None:
    data = tmp_path / "synthetic"
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_config(data)))

    straight = _train("--config", str(config), "-o", str(tmp_path / "straight"))
    assert "Simulating 4 volumes" in straight.output  # data.synthetic: the manifest did not exist yet
    assert "Validation SSIM" in straight.output and "zero-filled" in straight.output
    run = tmp_path / "straight"
    for name in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "checkpoints/config.yaml", "model.pt"):
        assert (run / name).is_file(), name
    record = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["mrirecon"]
    assert record["manifest_sha256"] == hashlib.sha256((data / "manifest.csv").read_bytes()).hexdigest()
    saved = yaml.safe_load((run / "checkpoints" / "config.yaml").read_text())
    assert saved["data"]["manifest"] == str(data / "manifest.csv")
    assert saved["output_dir"] == str(run)  # the -o folder, not the recipe's: a rerun of it stays here
    if "test" in (data / "manifest.csv").read_text():
        assert (run / "test_metrics.csv").is_file()

    # the same run in two parts: one epoch, then --resume with the config's two epochs
    _train("--config", str(config), "-o", str(tmp_path / "parts"), "trainer.max_epochs=1")
    (tmp_path / "sub").mkdir()  # the same folder spelt otherwise: not a changed setting
    resumed = _train("--config", str(config), "-o", str(tmp_path / "sub" / ".." / "parts"), "--resume")
    assert "Resuming with changed settings: trainer.max_epochs (1 → 2)" in resumed.output
    a = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "parts" / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] > 0
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    # resuming the finished run trains nothing and still says its best score
    again = _train("--config", str(config), "-o", str(tmp_path / "parts"), "--resume")
    assert "Best validation SSIM" in again.output


def test_missing_data_and_unknown_split_fail_before_training(tiny_registered: str, tmp_path: Path) -> None:
    mapping = _config(tmp_path / "nowhere")
    del mapping["data"]["synthetic"]
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(mapping))
    result = CliRunner().invoke(cli, ["train", "--config", str(config), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "the train data" in result.output and "does not exist" in result.output
    assert not (tmp_path / "out").exists()


def test_a_fast_dev_run_names_no_file_it_did_not_write(tiny_registered: str, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path / "synthetic")))
    result = _train("--config", str(config), "-o", str(tmp_path / "out"), "trainer.fast_dev_run=true")
    assert "Test SSIM" in result.output and "test_metrics.csv" not in result.output
    assert not (tmp_path / "out" / "test_metrics.csv").exists()


@pytest.mark.slow
def test_a_fine_tune_resumes_after_its_init_file_is_gone(tiny_registered: str, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path / "synthetic")))
    _train("--config", str(config), "-o", str(tmp_path / "base"), "trainer.max_epochs=1")
    init = tmp_path / "init.pt"
    (tmp_path / "base" / "model.pt").rename(init)
    tune = tmp_path / "tune"
    first = _train("--config", str(config), "-o", str(tune), "trainer.max_epochs=1", f"model.init={init}")
    assert f"Starting from the weights of {init}" in first.output
    steps = torch.load(tune / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    init.unlink()  # the run's checkpoint holds its weights: resuming needs nothing else
    resumed = _train("--config", str(config), "-o", str(tune), f"model.init={init}", "--resume")
    assert "Starting from the weights" not in resumed.output
    assert torch.load(tune / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2 * steps
    # a new run from the missing file is still refused in one line
    result = CliRunner().invoke(
        cli, ["train", "--config", str(config), "-o", str(tmp_path / "new"), f"model.init={init}"]
    )
    assert result.exit_code != 0 and "model.init" in result.output


@pytest.mark.slow
def test_resume_without_a_config_continues_the_run_with_its_own(tiny_registered: str, tmp_path: Path) -> None:
    """`train -o RUN --resume` continues with the config the run recorded, the overrides it was
    started with included (with `-c` the YAML is read again: its optim.lr would be refused)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path / "synthetic")))
    run = tmp_path / "run"
    _train("--config", str(config), "-o", str(run), "trainer.max_epochs=1", "optim.lr=2e-3")
    resumed = _train("-o", str(run), "--resume", "trainer.max_epochs=2")
    assert "Resuming with changed settings: trainer.max_epochs (1 → 2)" in resumed.output
    assert "optim" not in resumed.output
    assert yaml.safe_load((run / "checkpoints" / "config.yaml").read_text())["optim"]["lr"] == 2e-3
    (run / "checkpoints" / "config.yaml").unlink()  # gone: the checkpoint's recorded config serves
    refused = CliRunner().invoke(
        cli, ["train", "-c", str(config), "-o", str(run), "--resume", "trainer.max_epochs=3", "optim.lr=5e-2"]
    )  # ... also to check a -c config against
    assert refused.exit_code == 2 and "optim settings differ" in refused.output, refused.output
    assert "last.ckpt" in refused.output
    _train("-o", str(run), "--resume", "trainer.max_epochs=3")
    saved = yaml.safe_load((run / "checkpoints" / "config.yaml").read_text())
    assert saved["optim"]["lr"] == 2e-3 and saved["trainer"]["max_epochs"] == 3
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2
    fewer = CliRunner().invoke(cli, ["train", "-o", str(run), "--resume", "trainer.max_epochs=2"])
    assert fewer.exit_code == 2 and "has trained 3 epochs already" in fewer.output, fewer.output
    for args, message in (
        (["--resume"], "no training config given"),
        (["-o", str(tmp_path / "none"), "--resume"], "nothing to resume"),
    ):
        result = CliRunner().invoke(cli, ["train", *args])
        assert result.exit_code == 2 and message in result.output, result.output
