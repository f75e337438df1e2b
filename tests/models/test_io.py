"""Saving and reloading a model payload gives the same model: identical outputs, same config."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from mrirecon.errors import CheckpointError
from mrirecon.models.io import load_model, save_model, weights_sha256
from tests.models.conftest import TINY, build_tiny
from tests.models.synthetic import acquisition


def test_save_and_reload_gives_identical_outputs(tiny, tmp_path: Path) -> None:
    variant, (name, config) = tiny
    model = build_tiny(variant, seed=3)
    with torch.no_grad():  # move every weight off its initial value, so a fresh build cannot pass
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    model.eval()
    path = save_model(tmp_path / f"{variant}.pt", name, config, model)
    loaded_name, loaded = load_model(path)
    assert loaded_name == name and loaded.config == config
    data = acquisition(batch=1, coils=2, height=9, width=8, seed=6)
    with torch.inference_mode():
        assert torch.equal(model(*data.inputs).image, loaded(*data.inputs).image)
    assert weights_sha256(loaded) == weights_sha256(model)


def test_the_weights_digest_changes_with_any_weight() -> None:
    import hashlib

    model = build_tiny("cirim", seed=3)
    digest = weights_sha256(model)
    assert len(digest) == 64 and digest == weights_sha256(build_tiny("cirim", seed=3))
    first = next(iter(model.parameters()))
    with torch.no_grad():
        first.view(-1)[0] += 1e-6
    assert weights_sha256(model) != digest
    # an oracle for a one-tensor module: the name, dtype and shape, then the raw bytes
    layer = torch.nn.Linear(2, 1, bias=False)
    expected = hashlib.sha256(b"weight:torch.float32:(1, 2);" + layer.weight.detach().numpy().tobytes())
    assert weights_sha256(layer) == expected.hexdigest()


def _edited(tmp_path: Path, model: str, name: str, edit: Callable[[dict[str, Any]], object]) -> Path:
    """A tiny model's file, its payload changed by ``edit``, saved as ``name``."""
    registry_name, config = TINY[model]
    original = save_model(tmp_path / f"{model}.pt", registry_name, config, build_tiny(model))
    payload = torch.load(original, weights_only=True)
    edit(payload)
    torch.save(payload, tmp_path / name)
    return tmp_path / name


def _first_float(payload: dict[str, Any]) -> str:
    return next(k for k, v in payload["state_dict"].items() if v.is_floating_point())


def test_weights_of_another_config_are_refused(tmp_path: Path) -> None:
    edited = _edited(tmp_path, "cirim", "edited.pt", lambda p: p["model_config"].update(cascades=3))
    with pytest.raises(CheckpointError, match=r"do not fit .*\(missing: cascades\.2\."):
        load_model(edited)
    # the tensors are named: which are missing or of another shape
    keys: list[str] = []

    def grow(payload: dict[str, Any]) -> None:
        keys.append(_first_float(payload))
        value = payload["state_dict"][keys[0]]
        payload["state_dict"][keys[0]] = torch.zeros(value.shape[0] + 1, *value.shape[1:])

    misshaped = _edited(tmp_path, "cirim", "misshaped.pt", grow)
    with pytest.raises(CheckpointError, match=rf"another shape: {re.escape(keys[0])} \("):
        load_model(misshaped)


def test_a_config_of_huge_sizes_is_refused_before_anything_is_allocated(tmp_path: Path) -> None:
    """The file's config is built on the meta device first: 200,000 channels (a 160 GB model) is
    refused by the tensors' shapes, not by the allocator (a traceback, or the process killed)."""
    huge = _edited(tmp_path, "rim_indrnn", "huge.pt", lambda p: p["model_config"].update(channels=200_000))
    with pytest.raises(CheckpointError, match=r"another shape: .*\(the model's \(200000,"):
        load_model(huge)


def test_weights_that_are_not_finite_are_refused_and_a_newer_file_says_so(tmp_path: Path) -> None:
    """A NaN weight loaded silently: infer blamed the input, training crashed an epoch later."""
    keys: list[str] = []

    def poison(payload: dict[str, Any]) -> None:
        keys.append(_first_float(payload))
        payload["state_dict"][keys[0]].view(-1)[0] = float("nan")

    nan = _edited(tmp_path, "rim_indrnn", "nan.pt", poison)
    with pytest.raises(CheckpointError, match=rf"weight '{re.escape(keys[0])}' holds NaN or infinite"):
        load_model(nan)

    def from_the_future(payload: dict[str, Any]) -> None:
        payload["mrirecon_version"] = "99.0.0"
        payload["model_config"]["shiny_new_option"] = 1

    newer = _edited(tmp_path, "rim_indrnn", "newer.pt", from_the_future)
    with pytest.raises(CheckpointError, match=r"written by mrirecon 99\.0\.0, this is .*: upgrade mrirecon"):
        load_model(newer)


@pytest.mark.parametrize("weights", [[1, 2], {"weight": 3}], ids=["list", "number"])
def test_weights_that_are_not_named_tensors_are_refused(tmp_path: Path, weights: object) -> None:
    name, config = TINY["cirim"]
    path = save_model(tmp_path / "cirim.pt", name, config, build_tiny("cirim"))
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = weights
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="not a mapping of names to tensors"):
        load_model(tmp_path / "edited.pt")


def test_a_config_that_is_not_a_mapping_and_weights_of_another_dtype_are_refused(tmp_path: Path) -> None:
    name, config = TINY["cirim"]
    path = save_model(tmp_path / "cirim.pt", name, config, build_tiny("cirim"))
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "model_config": 5}, tmp_path / "config.pt")
    with pytest.raises(
        CheckpointError, match="its model config is not a mapping of settings \\(found int\\)"
    ):
        load_model(tmp_path / "config.pt")
    for dtype in (torch.int32, torch.bool, torch.float64):  # copy_ would have cast them silently
        key = next(iter(payload["state_dict"]))
        weights = {**payload["state_dict"], key: payload["state_dict"][key].to(dtype)}
        torch.save({**payload, "state_dict": weights}, tmp_path / "dtype.pt")
        with pytest.raises(CheckpointError, match=f"weight '{key}' is {dtype}, the model's is torch.float32"):
            load_model(tmp_path / "dtype.pt")


def test_a_file_with_pickled_objects_is_refused_without_unsafe_advice(tmp_path: Path) -> None:
    path = tmp_path / "objects.pt"
    torch.save({"model_name": "cirim", "hook": _Payload()}, path)
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    message = caught.value.one_line()
    assert "holds Python objects" in message and "never unpickles" in message
    assert "weights_only" not in message and "two options" not in message and "trust" not in message
    # a file whose pickle would run a shell command is named for that, not called damaged, and the
    # command never runs
    marker = tmp_path / "ran"
    torch.save({"model_name": "cirim", "hook": _Shell(f"touch {marker}")}, tmp_path / "shell.pt")
    with pytest.raises(CheckpointError, match=r"holds Python objects \(posix\.system\)"):
        load_model(tmp_path / "shell.pt")
    assert not marker.exists()


class _Shell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, (self.command,)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x89HDF\r\n\x1a\n" + bytes(64), "it is an HDF5 file (data or images), not a PyTorch file"),
        (b"file,slice\na.h5,0\n", "it is not a PyTorch file (torch.save writes a zip archive)"),
        (b"", "the file is empty"),
        (b"\x80\x02" + bytes(32), "torch cannot read it without unpickling Python objects (damaged"),
    ],
    ids=["hdf5", "csv", "empty", "damaged pickle"],
)
def test_a_file_that_is_not_a_checkpoint_is_not_called_one_with_python_objects(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    """Only a file that holds pickled objects is said to: an input file given in the checkpoint's
    place (arguments swapped) is named for what it is."""
    path = tmp_path / "given.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    message = caught.value.one_line()
    assert reason in message and "Python objects besides" not in message


class _Payload:
    """An arbitrary object: what a malicious or foreign checkpoint carries."""


def test_a_payload_keeps_its_training_record_and_its_coil_map_method(tmp_path: Path) -> None:
    """model.pt of a training run lost the training config, so inference gave a model fine-tuned on
    ESPIRiT maps ACS maps without a word."""
    from mrirecon.models.checkpoints import load_trained_model, trained_coil_maps

    name, config = TINY["rim_gru"]
    model = build_tiny("rim_gru", seed=1)
    record = {"manifest_sha256": "0" * 64, "training_config": {"data": {"coil_maps": "espirit"}}}
    path = save_model(tmp_path / "model.pt", name, config, model, record=record)
    assert trained_coil_maps(path) == "espirit" == load_trained_model(path)[2]
    assert load_model(path)[0] == name
    plain = save_model(tmp_path / "plain.pt", name, config, model)
    assert trained_coil_maps(plain) is None and load_trained_model(plain)[2] is None
