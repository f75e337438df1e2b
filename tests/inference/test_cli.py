"""``mrirecon infer`` and ``mrirecon batch`` on the command line: outputs, exit codes, one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mrirecon.export import read_reconstruction
from mrirecon.export.deidentify import file_pseudonym
from mrirecon_cli.main import cli
from tests.inference import fakes

pytestmark = pytest.mark.usefixtures("installed")
QUIET = ["--no-progress", "--workers", "0", "--device", "cpu"]


def _run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_both_commands_are_listed() -> None:
    output = _run("--help").output
    assert "infer" in output and "batch" in output


def test_infer_a_file_with_retrospective_undersampling(tmp_path: Path, inputs: Path) -> None:
    out = tmp_path / "out"
    result = _run(
        "infer",
        "zero_filled",
        inputs / "vol_a.h5",
        "-o",
        out,
        "--mask",
        "equispaced",
        "--acceleration",
        4,
        *QUIET,
    )
    assert result.exit_code == 0, result.output
    assert "Reconstructed 1 volume(s) (3 slices)" in result.output
    recon = read_reconstruction(out / "vol_a.h5")
    assert (recon.undersampling, recon.mask_type, recon.acceleration) == ("retrospective", "equispaced", 4.0)
    assert sorted(p.name for p in out.iterdir()) == ["vol_a.h5"]


def test_infer_a_folder_with_dicom(tmp_path: Path, inputs: Path) -> None:
    out = tmp_path / "out"
    refused = _run("infer", "zero_filled", inputs, "-o", out, "--dicom", "--deidentify", *QUIET)
    assert (
        refused.exit_code == 2
        and "without a salt" in refused.output
        and "MRIRECON_DEID_SALT" in refused.output
    )
    assert not out.exists()  # nothing written before the refusal
    result = _run(
        "infer", "zero_filled", inputs, "-o", out, "--dicom", "--deidentify", "--deid-salt", "k", *QUIET
    )
    assert result.exit_code == 0, result.output
    series = sorted(p.name for p in (out / "dicom").iterdir() if not p.name.startswith("."))
    pseudonyms = {name: file_pseudonym(f"{name}.h5", "k") for name in ("vol_a", "vol_b", "vol_c")}
    assert series == sorted(pseudonyms.values())  # the input names do not appear in the output
    assert (out / "dicom" / f".{pseudonyms['vol_a']}.series.json").is_file()  # "finished" on a resume
    unsalted = _run(
        "infer",
        "zero_filled",
        inputs,
        "-o",
        tmp_path / "o2",
        "--dicom",
        "--deidentify",
        "--allow-unsalted",
        *QUIET,
    )
    assert unsalted.exit_code == 0, unsalted.output
    assert len(list((out / "dicom" / pseudonyms["vol_c"]).glob("IM_*.dcm"))) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["infer", "cirrim", "{in}", "-o", "{out}"], "unknown model 'cirrim'"),
        (["infer", "{bad_ckpt}", "{in}", "-o", "{out}"], "cannot read it as a"),
        (["infer", "fake_learned", "{in}", "-o", "{out}"], "learned and needs its trained weights"),
        (["infer", "zero_filled", "{in}", "-o", "{out}", "--mask", "random"], "go together"),
        (["infer", "zero_filled", "{missing}", "-o", "{out}"], "no such input"),
        (
            ["batch", "--model", "zero_filled", "-o", "{out}"],
            "exactly one of --manifest and --input-dir",
        ),
        (["batch", "--input-dir", "{in}", "-o", "{out}"], "exactly one of --checkpoint and --model"),
        (
            ["batch", "--checkpoint", "{missing}", "--input-dir", "{in}", "-o", "{out}"],
            "no such checkpoint file",
        ),
        (["batch", "--model", "zero_filled", "--input-dir", "{in}", "-o", "{in}/vol_a.h5"], "is a file"),
        (["infer", "zero_filled", "{in}", "-o", "{in}"], "output folder is the folder of the inputs"),
        (
            ["infer", "zero_filled", "{in}", "-o", "{out}", "--precision", "bf16-mixed"],
            "zero_filled is a classical method and runs in float32",
        ),
        (["infer", "cirim-brian", "{in}", "-o", "{out}"], "did you mean 'cirim-brain'"),
        (
            ["infer", "{in}/vol_a.h5", "{in}", "-o", "{out}"],
            "it is an HDF5 file (data or images), not a PyTorch",
        ),
        (
            ["batch", "--model", "zero_filled", "--manifest", "{in}/vol_a.h5", "-o", "{out}"],
            "--manifest takes a manifest CSV",
        ),
        (
            ["batch", "--model", "zero_filled", "--input-dir", "{tmp}", "-o", "{out}"],
            "subfolders are not searched",
        ),
    ],
    ids=[
        "unknown-model",
        "bad-checkpoint",
        "learned-by-name",
        "mask-alone",
        "missing-input",
        "no-source",
        "no-model",
        "missing-checkpoint",
        "output-is-file",
        "output-is-input",
        "bf16-classical",
        "pretrained-misspelt",
        "input-as-checkpoint",
        "manifest-not-csv",
        "inputs-in-a-subfolder",
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(tmp_path: Path, inputs: Path, args, message) -> None:
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    values = {"in": inputs, "out": tmp_path / "out", "bad_ckpt": bad, "missing": tmp_path / "missing.h5"}
    values["tmp"] = inputs.parent
    result = CliRunner().invoke(cli, [a.format(**values) for a in args] + QUIET)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "out").exists()  # refused before an output folder is made


def test_batch_over_a_manifest_split(tmp_path: Path) -> None:
    from mrirecon.data.manifest import read_manifest
    from mrirecon.data.simulate import simulate_dataset

    data = tmp_path / "data"
    simulate_dataset(
        data, volumes=5, slices=1, coils=2, size=(32, 32), seed=1, split=(0.4, 0.2, 0.4), progress=False
    )
    entries = read_manifest(data / "manifest.csv")
    wanted = sorted(e.path.stem for e in entries if e.split == "test")
    assert 0 < len(wanted) < len(entries)
    out = tmp_path / "out"
    args = [
        "batch",
        "--model",
        "zero_filled",
        "--manifest",
        data / "manifest.csv",
        "--split",
        "test",
        "-o",
        out,
    ]
    result = _run(*args, *QUIET)
    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in out.glob("*.h5")) == wanted


def test_batch_exit_code_1_when_an_input_failed(tmp_path: Path, inputs: Path) -> None:
    (inputs / "vol_corrupt.h5").write_bytes(b"garbage")
    out = tmp_path / "out"
    result = _run("batch", "--model", "zero_filled", "--input-dir", inputs, "-o", out, *QUIET)
    assert result.exit_code == 1, result.output
    assert "Reconstructed 3 volume(s) (9 slices)" in result.output and "1 failed" in result.output
    assert f"1 input(s) failed: see {out / 'failures.csv'}" in result.output
    again = _run("batch", "--model", "zero_filled", "--input-dir", inputs, "-o", out, *QUIET)
    assert again.exit_code == 1 and "skipped 3 finished" in again.output


def test_zero_filled_as_printed_names_the_model_and_infer_takes_a_split(tmp_path: Path, inputs: Path) -> None:
    from mrirecon.data.manifest import build_manifest

    manifest = tmp_path / "m.csv"
    build_manifest(sorted(inputs.glob("*.h5")), manifest, fractions=(0.0, 0.0, 1.0), progress=False)
    out = tmp_path / "out"
    result = _run(
        "infer", "zero-filled", manifest, "-o", out, "--split", "test", "--num-workers", "0", *QUIET[:1]
    )
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.h5"))) == 3
    empty = _run("infer", "zero-filled", manifest, "-o", tmp_path / "o2", "--split", "train", *QUIET)
    assert empty.exit_code == 2
    assert "the manifest has no entry of split 'train' (its splits: test)" in empty.output


@pytest.mark.parametrize("model", ["zero_filled", "sense"])
@pytest.mark.parametrize("width", [24, 25])
def test_uncentred_kspace_is_reconstructed_by_a_centred_model(tmp_path: Path, model: str, width: int) -> None:
    """Calgary-Campinas style k-space (DC at the first sample) was refused by every centred model,
    the baselines and the pretrained models included: it is handed over in the model's convention
    (the same image), fully sampled and with a retrospective mask, also for an odd width (where
    fftshift and ifftshift differ)."""
    import h5py

    from mrirecon.physics import fftnc, ifftnc

    centred, uncentred = tmp_path / "centred", tmp_path / "uncentred"
    fakes.write_input(centred / "vol_b.h5", size=(32, width), seed=2)
    uncentred.mkdir()
    shutil.copy(centred / "vol_b.h5", uncentred / "vol_b.h5")
    with h5py.File(uncentred / "vol_b.h5", "a") as f:  # the same images, stored uncentred
        kspace = torch.from_numpy(f["kspace"][()])
        f["kspace"][...] = fftnc(ifftnc(kspace), centered=False).numpy()
        f.attrs["mrirecon_fft_centered"] = False
    mask = ["--mask", "equispaced_fraction", "--acceleration", "4"]
    for extra in ([], mask):
        outputs = []
        for folder in (centred, uncentred):
            out = tmp_path / f"{folder.name}{len(extra)}"
            result = _run("infer", model, folder / "vol_b.h5", "-o", out, *extra, *QUIET)
            assert result.exit_code == 0, result.output
            with h5py.File(out / "vol_b.h5") as f:
                outputs.append((f["reconstruction"][()], f["zero_filled"][()]))
        # float32 rounding: 4e-7 of the maximum, up to 3e-5 once SENSE's conjugate gradients
        # amplify it on undersampled data (the CPU's FFT kernels decide); a wrong convention: tenths
        for one, other in zip(*outputs, strict=True):
            np.testing.assert_allclose(other, one, rtol=0, atol=1e-4 * float(one.max()))


def test_a_deidentified_run_names_inputs_by_their_pseudonyms_in_its_notes(tmp_path: Path) -> None:
    mask = np.zeros(24, bool)
    mask[::3] = mask[10:14] = True
    name = "DOE_JANE_MRN12345.h5"
    fakes.write_input(tmp_path / "in" / name, mask=mask)  # undersampled already: --mask gets a Note
    args = ["batch", "--model", "zero_filled", "--input-dir", tmp_path / "in", "--mask", "random"]
    args += ["--acceleration", 4, *QUIET]
    plain = _run(*args, "-o", tmp_path / "plain")
    assert plain.exit_code == 0, plain.output
    assert f"Note: {name} is undersampled already" in plain.output  # what the notice says
    anonymous = _run(*args, "-o", tmp_path / "anonymous", "--deidentify", "--deid-salt", "k")
    assert anonymous.exit_code == 0, anonymous.output
    assert f"Note: {file_pseudonym(name, 'k')} is undersampled already" in anonymous.output
    for needle in ("DOE", "JANE", "MRN12345"):
        assert needle not in anonymous.output, needle


def test_the_summary_line_keeps_dicom_in_capitals() -> None:
    from types import SimpleNamespace

    from mrirecon_cli.inference_options import summary

    result = SimpleNamespace(reconstructed=0, slices=0, seconds=1.0, skipped=2, exported=2, failures=[])
    line = summary(result)
    assert "exported 2 DICOM series" in line and line[0].isupper()


def test_simulate_refuses_zero_coils_and_snr(tmp_path: Path) -> None:
    for option in ("--coils", "--snr"):
        result = CliRunner().invoke(cli, ["simulate", str(tmp_path / "x"), option, "0"])
        assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output
    for args, words in (
        (["--anatomy", "mni", "--snr", "inf"], "the mni simulator needs a finite SNR"),
        (["--anatomy", "mni", "--size", "0", "64"], "Invalid value for '--size'"),
        (["--lesions", "--lesion-contrast", "nan"], "lesion contrast must be a positive number"),
        (["--anatomy", "mni", "--lesions", "--lesion-count", "0", "0"], "--lesion-count set the phantom's"),
    ):
        result = CliRunner().invoke(cli, ["simulate", str(tmp_path / "x"), *args, "--volumes", "1"])
        assert result.exit_code == 2 and words in result.output, result.output
    assert not (tmp_path / "x").exists()
