"""Training runs on in-memory phantoms: smoke runs, checkpoints, exact resume, output-folder rules."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn
from torch.utils.data import default_collate

from mrirecon.errors import CheckpointError, ConfigError
from mrirecon.models.checkpoints import (
    load_checkpoint_model,
    load_trained_model,
    read_checkpoint,
    trained_coil_maps,
)
from mrirecon.training.config import train_config_from_mapping
from mrirecon.training.module import ReconModule
from mrirecon.training.run import train
from tests.training.conftest import base_mapping
from tests.training.tiny import TinyConfig, TinyUnrolled


def _config(**trainer: Any) -> Any:
    return train_config_from_mapping(base_mapping(**trainer))


def test_fast_dev_run_trains_one_step_and_validates(
    tiny_registered: str, phantom_data: dict, tmp_path: Path
) -> None:
    result = train(
        _config(fast_dev_run=True), output_dir=tmp_path, datasets=phantom_data, echo=lambda _: None
    )
    # one validation pass scored (fast_dev_run validates one batch: one slice of one volume)
    assert 0 < result.val_metrics["val_ssim"] <= 1
    assert "val_ssim_zero_filled" in result.val_metrics
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()  # fast_dev_run writes nothing


def test_the_consistency_loss_trains_and_validates(
    tiny_registered: str, phantom_data: dict, tmp_path: Path
) -> None:
    mapping = base_mapping(fast_dev_run=True)
    mapping["loss"]["terms"] = {"l1": 1.0, "dc": 0.5}
    result = train(
        train_config_from_mapping(mapping), output_dir=tmp_path, datasets=phantom_data, echo=lambda _: None
    )
    assert result.val_metrics["val_loss"] > 0
    module = ReconModule(tiny_registered, TinyConfig(), loss=train_config_from_mapping(mapping).loss)
    mapping["loss"]["terms"] = {"l1": 1.0}
    plain_module = ReconModule(tiny_registered, TinyConfig(), loss=train_config_from_mapping(mapping).loss)
    batch = default_collate([phantom_data["train"][0], phantom_data["train"][1]])
    with torch.no_grad():
        output = module(batch)
        both = float(module._loss(output, batch))
        plain = float(plain_module._loss(output, batch))
    measured = module._measured(batch, slice(0, 1))
    assert measured is not None and measured[1].shape[0] == 1
    assert plain_module._measured(batch, slice(None)) is None
    assert both > plain > 0  # the dc term adds the residual of every estimate


def test_the_validation_loss_of_a_slice_is_its_training_loss_lesion_terms_included(
    tiny_registered: str, phantom_data: dict
) -> None:
    mapping = base_mapping()
    mapping["loss"]["terms"] = {"l1": 1.0, "lesion_l1": 1.0, "lesion_contrast": 0.5, "dc": 0.5}
    module = ReconModule(tiny_registered, TinyConfig(), loss=train_config_from_mapping(mapping).loss)
    batch = default_collate([phantom_data["train"][0]])
    labels = torch.zeros(batch.target.shape, dtype=torch.int16)
    labels[:, 10:15, 12:17] = 1  # a lesion the loss terms see
    batch = batch._replace(lesion_labels=labels)
    with torch.no_grad():
        output = module(batch)
        training = float(module._loss(output, batch))
        validation = module._per_slice_loss(output, batch)
        without = float(module._loss(output, batch._replace(lesion_labels=torch.zeros_like(labels))))
    assert validation.shape == (1,) and float(validation[0]) == pytest.approx(training, rel=1e-6)
    assert training > without  # the lesion terms are in both


@pytest.mark.slow
def test_checkpoints_record_the_model_and_load_without_unpickling(
    tiny_registered: str, phantom_data: dict, tmp_path: Path
) -> None:
    config = _config(max_epochs=2)
    datasets = {**phantom_data, "test": phantom_data["val"]}
    result = train(config, output_dir=tmp_path, datasets=datasets, echo=lambda _: None)
    paths = result.paths
    for path in (paths.best, paths.last, paths.config, paths.model, paths.test_metrics):
        assert path.is_file(), path
    # the best checkpoint was tested on the test set (here the validation set): the same scores
    best_epoch_ssim = result.best_val_ssim
    assert result.test_metrics["test_ssim"] == pytest.approx(best_epoch_ssim, abs=1e-6)
    with open(paths.test_metrics) as f:
        assert [row["fname"] for row in csv.DictReader(f)] == ["val000.h5", "val001.h5"]
    ckpt = torch.load(paths.best, weights_only=True)
    record = ckpt["mrirecon"]
    assert record["model_name"] == "tiny"
    assert record["model_config"] == {"cascades": 2, "time_steps": 2, "channels": 8}
    assert record["format"] == 1 and record["mrirecon_version"]
    recorded = {**config.to_mapping(), "output_dir": str(tmp_path)}  # the folder the run wrote
    assert "manifest_sha256" in record and record["training_config"] == recorded
    assert result.best_val_ssim == pytest.approx(
        float(ckpt["callbacks"][next(iter(ckpt["callbacks"]))]["best_model_score"])
    )
    # the best checkpoint's model and the exported payload are the same model
    sample = phantom_data["val"][0]
    inputs = (sample.masked_kspace[None], sample.mask[None], sample.coil_maps[None])
    name_a, model_a = load_checkpoint_model(paths.best)
    name_b, model_b = load_checkpoint_model(paths.model)
    # model.pt records the training config too: inference takes its coil-map method from it
    assert torch.load(paths.model, weights_only=True)["training_config"] == recorded
    assert trained_coil_maps(paths.model) == trained_coil_maps(paths.best) == config.data.coil_maps
    assert load_trained_model(paths.model)[2] == load_trained_model(paths.best)[2] == config.data.coil_maps
    assert name_a == name_b == "tiny"
    with torch.no_grad():
        assert torch.equal(model_a(*inputs).image, model_b(*inputs).image)
    weights = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items()}
    assert all(torch.equal(weights[k], v) for k, v in model_a.state_dict().items())
    # the CSV log has the per-epoch validation metrics
    with open(next((tmp_path / "logs" / "csv").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_ssim"]) for r in rows if r.get("val_ssim")][-1] == pytest.approx(
        result.val_metrics["val_ssim"]
    )


class _Pickled:
    pass


def test_loading_refuses_pickled_objects_and_foreign_files(tiny_registered: str, tmp_path: Path) -> None:
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "mrirecon": {"model_name": "tiny"}, "payload": _Pickled()}, evil)
    with pytest.raises(CheckpointError, match="cannot read it as a checkpoint"):
        load_checkpoint_model(evil)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "missing.ckpt")
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(1)}}, plain)
    with pytest.raises(CheckpointError, match="without mrirecon's record"):
        load_checkpoint_model(plain)
    other = tmp_path / "other.ckpt"
    torch.save(
        {"state_dict": {}, "mrirecon": {"format": 1, "model_name": "nonexistent", "model_config": {}}}, other
    )
    with pytest.raises(CheckpointError, match="unknown model 'nonexistent'"):
        load_checkpoint_model(other)
    neither = tmp_path / "neither.pt"
    torch.save({"weights": torch.zeros(2)}, neither)
    with pytest.raises(CheckpointError, match="neither a training checkpoint nor a model file"):
        load_checkpoint_model(neither)
    wrong = tmp_path / "wrong.ckpt"
    torch.save(
        {
            "state_dict": {"model.x": torch.zeros(1)},
            "mrirecon": {"format": 1, "model_name": "tiny", "model_config": {}},
        },
        wrong,
    )
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint_model(wrong)


class _Crash(Exception):
    pass


class _CrashAtEpoch(Callback):
    """Simulates a run killed at the start of an epoch (after the previous epoch's checkpoint)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.current_epoch == self.epoch:
            raise _Crash


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_run(
    tiny_registered: str, phantom_data: dict, tmp_path: Path
) -> None:
    mapping = base_mapping(max_epochs=2)
    mapping["data"].update(batch_size=2, num_workers=1)  # a worker prefetches: the epoch must be right early
    mapping["optim"] = {"lr": 3e-3, "scheduler": "cosine", "warmup_steps": 3, "gradient_clip_val": 1.0}
    config = train_config_from_mapping(mapping)
    quiet: dict[str, Any] = {"datasets": phantom_data, "echo": lambda _: None}

    straight = train(config, output_dir=tmp_path / "straight", **quiet)
    with pytest.raises(_Crash):
        train(config, output_dir=tmp_path / "resumed", callbacks=[_CrashAtEpoch(1)], **quiet)
    interrupted = _weights(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    resumed = train(config, output_dir=tmp_path / "resumed", resume=True, **quiet)

    a, b = _weights(straight.paths.last), _weights(resumed.paths.last)
    assert a.keys() == b.keys()
    assert any(not torch.equal(interrupted[k], a[k]) for k in a)  # the resumed run did train on
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.val_metrics["val_ssim"] == straight.val_metrics["val_ssim"]
    ckpt_a = torch.load(straight.paths.last, weights_only=True)
    ckpt_b = torch.load(resumed.paths.last, weights_only=True)
    assert ckpt_a["global_step"] == ckpt_b["global_step"] == 8
    assert ckpt_a["lr_schedulers"] == ckpt_b["lr_schedulers"]


def test_output_folder_rules(tiny_registered: str, phantom_data: dict, tmp_path: Path) -> None:
    config = _config(max_epochs=1)
    quiet: dict[str, Any] = {"datasets": phantom_data, "echo": lambda _: None}
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(config, output_dir=tmp_path, resume=True, **quiet)
    train(config, output_dir=tmp_path, **quiet)
    with pytest.raises(ConfigError, match=r"already holds a training run.*--resume"):
        train(config, output_dir=tmp_path, **quiet)
    changed = train_config_from_mapping(
        {**base_mapping(max_epochs=1), "model": {"name": "tiny", "params": {"channels": 4}}}
    )
    with pytest.raises(
        ConfigError, match=r"the model differs from the run being resumed \(channels \(8 → 4\)\)"
    ):
        train(changed, output_dir=tmp_path, resume=True, **quiet)
    # fast_dev_run is a smoke test of a new run: refused before anything runs (it was an internal
    # error from Lightning once a run had trained 3 epochs)
    smoke = train_config_from_mapping({**base_mapping(max_epochs=1, fast_dev_run=True)})
    with pytest.raises(ConfigError, match=r"fast_dev_run checks a configuration .* does not resume one"):
        train(smoke, output_dir=tmp_path, resume=True, **quiet)
    # the optimiser and its schedule come back from the checkpoint: a changed optim is refused
    faster = train_config_from_mapping({**base_mapping(max_epochs=1), "optim": {"lr": 1e-2}})
    with pytest.raises(
        ConfigError, match=r"optim settings differ .*optim\.lr \(0\.003 → 0\.01\).*model\.init="
    ):
        train(faster, output_dir=tmp_path, resume=True, **quiet)
    # but not gradient clipping, which the trainer takes at each start: it applies, and is listed
    clipped = train_config_from_mapping(
        {**base_mapping(max_epochs=2), "optim": {"lr": 3e-3, "gradient_clip_val": 0.5}}
    )
    said: list[str] = []
    train(clipped, output_dir=tmp_path, resume=True, datasets=phantom_data, echo=said.append)
    assert any("optim.gradient_clip_val (None → 0.5)" in line for line in said), said
    # the changes are announced only for a resume that goes on ("Resuming with changed settings"
    # came before the refusal of a max_epochs below the epochs trained)
    said.clear()
    fewer = train_config_from_mapping(
        {**base_mapping(max_epochs=1), "optim": {"lr": 3e-3, "gradient_clip_val": 0.5}}
    )
    with pytest.raises(ConfigError, match="trained 2 epochs already"):
        train(fewer, output_dir=tmp_path, resume=True, datasets=phantom_data, echo=said.append)
    assert not any("Resuming with changed settings" in line for line in said), said
    # a model section that builds the same model resumes: the default channels stated, or left out
    same = {**base_mapping(max_epochs=3), "optim": {"lr": 3e-3, "gradient_clip_val": 0.5}}
    train(
        train_config_from_mapping({**same, "model": {"name": "tiny"}}),
        output_dir=tmp_path,
        resume=True,
        **quiet,
    )
    # so is another number of steps per epoch: the restored schedule was counted for the old one
    larger = train_config_from_mapping({**base_mapping(max_epochs=1, limit_train_batches=2)})
    with pytest.raises(ConfigError, match=r"steps per epoch differ .*trainer\.limit_train_batches"):
        train(larger, output_dir=tmp_path, resume=True, **quiet)
    # a finished run's model.pt is not replaced by a new run, also when its checkpoints are gone
    for name in ("last.ckpt", "best.ckpt"):
        (tmp_path / "checkpoints" / name).unlink()
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(config, output_dir=tmp_path, **quiet)


def test_accumulation_clipping_and_checkpointing_change_steps_not_results(
    tiny_registered: str, phantom_data: dict, tmp_path: Path
) -> None:
    quiet: dict[str, Any] = {"datasets": phantom_data, "echo": lambda _: None}
    mapping = base_mapping(max_epochs=1)
    mapping["optim"] = {"lr": 3e-3, "accumulate_grad_batches": 2, "gradient_clip_val": 0.5}
    plain = train(train_config_from_mapping(mapping), output_dir=tmp_path / "plain", **quiet)
    mapping["trainer"]["gradient_checkpointing"] = True
    recomputed = train(train_config_from_mapping(mapping), output_dir=tmp_path / "ckpt", **quiet)
    a = torch.load(plain.paths.last, weights_only=True)
    b = torch.load(recomputed.paths.last, weights_only=True)
    assert a["global_step"] == b["global_step"] == 4  # 8 slices, 2 batches per optimiser step
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(value, b["state_dict"][key], rtol=1e-5, atol=1e-6)


def test_bf16_autocast_on_cpu_keeps_the_physics_complex64(
    tiny_registered: str, phantom_data: dict, tmp_path: Path
) -> None:
    config = _config(fast_dev_run=True, precision="bf16-mixed")
    result = train(config, output_dir=tmp_path, datasets=phantom_data, echo=lambda _: None)
    assert 0 < result.val_metrics["val_ssim"] <= 1
    # under autocast the convolutions run in bfloat16 while the image estimates stay complex64
    module = ReconModule("tiny", TinyConfig())
    seen: list[torch.dtype] = []
    first_net = cast(nn.Sequential, cast(TinyUnrolled, module.model).nets[0])
    first_net[0].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    batch = default_collate([phantom_data["train"][0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = module(batch)
        loss = module._loss(output, batch)
    assert seen and all(d == torch.bfloat16 for d in seen)
    assert output.image.dtype == torch.complex64 and all(
        s.dtype == torch.complex64 for c in output.steps for s in c
    )
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_predict_step_returns_magnitudes_in_the_input_scale(tiny_registered: str, phantom_data: dict) -> None:
    module = ReconModule("tiny", TinyConfig()).eval()
    samples = [phantom_data["val"][i] for i in (0, 1)]
    batch = default_collate(samples)
    with torch.no_grad():
        out = module.predict_step(batch, 0)
        image = module(batch).image
    assert out["fname"] == ["val000.h5", "val000.h5"] and out["slice_num"] == [0, 1]
    expected = image.abs() * torch.tensor([s.scale for s in samples]).view(-1, 1, 1)
    torch.testing.assert_close(out["reconstruction"], expected)


def test_last_checkpoint_is_the_last_epoch_even_without_improvement(
    tiny_registered: str, phantom_data: dict, tmp_path: Path
) -> None:
    mapping = base_mapping(max_epochs=2)
    mapping["optim"] = {"lr": 1e-30}  # the weights (and so the SSIM) stay put: epoch 2 is no better
    result = train(
        train_config_from_mapping(mapping), output_dir=tmp_path, datasets=phantom_data, echo=lambda _: None
    )
    assert torch.load(result.paths.best, weights_only=True)["global_step"] == 8
    assert torch.load(result.paths.last, weights_only=True)["global_step"] == 16


@pytest.mark.slow
def test_resuming_on_other_data_says_so(tiny_registered: str, tmp_path: Path) -> None:
    mapping = base_mapping(max_epochs=1)
    mapping["data"] = {
        "simulation": {
            "train_slices": 2,
            "val_slices": 1,
            "seed": 3,
            "options": {"rows": [64, 64], "coils": [2, 2], "aspect": [1.0, 1.0]},
        }
    }
    said: list[str] = []
    train(train_config_from_mapping(mapping), output_dir=tmp_path, echo=said.append)
    mapping["trainer"]["max_epochs"] = 2
    train(train_config_from_mapping(mapping), output_dir=tmp_path, resume=True, echo=said.append)
    assert not any("changed data" in line for line in said)  # the same stream: nothing to say
    mapping["data"]["simulation"]["seed"] = 4
    mapping["trainer"]["max_epochs"] = 3
    train(train_config_from_mapping(mapping), output_dir=tmp_path, resume=True, echo=said.append)
    assert any(line.startswith("Resuming with changed data: its checksum was ") for line in said)


def test_a_fine_tune_reads_its_init_once_while_it_is_unchanged(
    tiny_registered: str, phantom_data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config check, the run's set-up and its start read model.init six times."""
    from mrirecon.models.io import save_model
    from mrirecon.models.registry import build_model

    def save(seed: int) -> Path:
        torch.manual_seed(seed)
        model = build_model("tiny", TinyConfig(channels=8))
        record = {"training_config": {"data": {"coil_maps": "acs"}}}
        return save_model(tmp_path / "init.pt", "tiny", TinyConfig(channels=8), model, record=record)

    init = save(0)
    reads: list[Path] = []
    real = torch.load

    def counted(source: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(Path(source))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counted)
    mapping = base_mapping(fast_dev_run=True)
    mapping["model"]["init"] = str(init)
    for run, expected in (("a", 1), ("b", 1)):
        config = train_config_from_mapping(mapping)
        train(config, output_dir=tmp_path / run, datasets=phantom_data, echo=lambda _: None)
        assert reads.count(init) == expected
    first = dict(load_trained_model(init)[1].state_dict())
    reads.clear()
    save(1)  # rewritten: read again, and the run starts from the new weights
    config = train_config_from_mapping(mapping)
    from mrirecon.training.model_setup import initial_model

    again = initial_model(config.model)[1].state_dict()
    assert not all(torch.equal(again[key], value) for key, value in first.items())
    assert reads.count(init) == 1


def test_a_fine_tune_on_other_coil_maps_than_its_init_is_said(tiny_registered: str, tmp_path: Path) -> None:
    """cirim-brain learned from ACS maps; fine-tuned on ESPIRiT's it started below zero-filled, and
    nothing said why (inference refuses the same mismatch)."""
    import warnings

    from mrirecon.errors import Notice
    from mrirecon.models.io import save_model
    from mrirecon.models.registry import build_model
    from mrirecon.training.run import _say_other_coil_maps

    record = {"training_config": {"data": {"coil_maps": "acs"}}}
    init = save_model(
        tmp_path / "init.pt",
        "tiny",
        TinyConfig(channels=8),
        build_model("tiny", TinyConfig(channels=8)),
        record=record,
    )
    for maps, said in (("espirit", True), ("acs", False)):
        mapping = base_mapping()
        mapping["model"]["init"] = str(init)
        mapping["data"]["coil_maps"] = maps
        config = train_config_from_mapping(mapping)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _say_other_coil_maps(config, build_model("tiny", TinyConfig(channels=8)))
        notes = [str(w.message) for w in caught if issubclass(w.category, Notice)]
        assert bool(notes) == said, notes
        if said:
            assert "learned from acs coil maps and this run gives it espirit maps" in notes[0]
            assert "data.coil_maps=acs" in notes[0]


def test_a_resume_that_lengthens_a_cosine_run_says_the_schedule_keeps_its_length(
    tiny_registered: str, phantom_data: dict, tmp_path: Path
) -> None:
    """The cosine's length comes back from last.ckpt: a larger max_epochs trains on at its floor."""
    mapping = base_mapping(max_epochs=1)
    mapping["optim"] = {"lr": 3e-3, "scheduler": "cosine"}
    train(train_config_from_mapping(mapping), output_dir=tmp_path, datasets=phantom_data, echo=lambda _: None)
    said: list[str] = []
    mapping["trainer"]["max_epochs"] = 2
    train(
        train_config_from_mapping(mapping),
        output_dir=tmp_path,
        resume=True,
        datasets=phantom_data,
        echo=said.append,
    )
    assert "The cosine schedule keeps the length it was counted for when the run started" in said, said


def test_a_diverged_run_stops_in_one_line_naming_its_batch(
    tiny_registered: str, phantom_data: dict, tmp_path: Path
) -> None:
    """With a learning rate far too high the loss was NaN from the first steps on: the run trained
    on NaN weights and ended in Lightning's "could not find the monitored key" (an internal error),
    or, NaN from one slice, reported success."""
    mapping = base_mapping(max_epochs=1)
    mapping["optim"] = {"lr": 1e30}
    with pytest.raises(
        ConfigError, match=r"the training diverged at step \d+: the gradients hold NaN or Inf"
    ) as caught:
        train(
            train_config_from_mapping(mapping),
            output_dir=tmp_path,
            datasets=phantom_data,
            echo=lambda _: None,
        )
    assert "the batch: train0" in caught.value.message  # its files and slices
    assert caught.value.hint is not None and "lower optim.lr (now 1e+30)" in caught.value.hint


def test_the_divergence_check_names_the_nan_batch_and_lets_large_finite_gradients_be(
    tiny_registered: str, phantom_data: dict
) -> None:
    """Its first form named the last batch of an accumulated step (a clean one), and took a
    float32 norm that overflows: finite gradients of 1e20, which clipping tames after the hook,
    stopped the run as "NaN or Inf"."""
    import types
    import warnings

    from mrirecon.data.dataset import collate_samples
    from mrirecon.training.config import OptimSection

    module = ReconModule(tiny_registered, TinyConfig(), optim=OptimSection(accumulate_grad_batches=2))
    first, second = (collate_samples([phantom_data["train"][i]]) for i in (0, 2))
    kspace = first.masked_kspace.clone()
    kspace[..., 0, 0] = float("inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module.training_step(first._replace(masked_kspace=kspace), 0).backward()
        module.training_step(second, 1).backward()  # (self.log without a trainer: a warning)
    module._trainer = cast(Any, types.SimpleNamespace(precision="32-true", global_step=3))
    with pytest.raises(
        ConfigError, match=r"step 3: .*\(the batch: train000.h5 slice 0 \(loss nan\)\)"
    ) as caught:
        module.on_before_optimizer_step(cast(Any, None))
    assert caught.value.hint is not None and "gradient_clip_val" in caught.value.hint
    for parameter in module.parameters():  # large, finite: no divergence
        parameter.grad = torch.full_like(parameter, 1e20)
    module.on_before_optimizer_step(cast(Any, None))
