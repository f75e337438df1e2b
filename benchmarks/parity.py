"""Parity goldens: the authors' RIM/CIRIM, RecurrentVarNet and E2E-VarNet at the papers' configurations.

This script builds the reference modules from *local exported copies* of the authors' code (never
vendored here, never imported by mrirecon), runs them on small synthetic inputs with fixed seeds and
writes golden files that ``tests/models/test_parity.py`` compares mrirecon with (in CI, without the
authors' code):

- ATOMMIC (wdika/atommic): ``CIRIM`` with one cascade (their RIM: GRU; MGU; IndRNN, their "IRIM")
  and five cascades (their CIRIM: hidden states carried over, estimates passed on with gradients),
  from ``projects/REC/fastMRIBrainsMulticoil/conf/train/{rim,cirim}.yaml``.
- mridc (wdika/mridc, ATOMMIC's predecessor): ``CIRIM`` with its own coupling (each cascade starts
  from the previous cascade's detached estimate and zero states), from
  ``projects/reconstruction/model_zoo/conf/base_cirim_train.yaml``.
- DIRECT (NKI-AI/direct): ``RecurrentVarNet`` and the ``UnetModel2d`` sensitivity model, from
  ``projects/cvpr2022_recurrentvarnet/calgary_campinas/configs/`` (the paper's configuration and
  its noRSI / noSER / shared-weights ablations); the engine's coil-map refinement
  (``MRIModelEngine.compute_sensitivity_map``) is taken from DIRECT's source text too.
- fastMRI (facebookresearch/fastMRI): ``fastmri.models.varnet.VarNet`` (E2E-VarNet, learned coil
  maps, RSS output; its class defaults at reduced channels), given ``num_low_frequencies`` = the
  mask's fully sampled centre, on a mask whose equispaced lines stay clear of that centre (so that
  fastMRI's symmetric block is the one mrirecon calibrates from; checked). Beside the final image
  it stores the learned coil maps and the k-space after every cascade (``aux/coil_maps``,
  ``aux/cascade_kspace``).

Each golden (``tests/models/goldens/<case>.npz``, plain NumPy, no pickle) holds the inputs (the
sampling mask always; k-space and coil maps for the small cases; the large cases are rebuilt from
the recipe in :func:`benchmarks.parity_cases.make_inputs` and checked against a SHA-256), the
authors' state dict (after a seeded perturbation away from the initialisation, so that no weight
sits at a special value such as α = 1 or a zero bias), the coil-combined estimate after every time
step of every cascade (on a strided grid that keeps the borders for 218 × 170), and the gradient of
a fixed loss with respect to every parameter, computed by the authors' modules in float64 with the
same weights and inputs (the exact gradient, up to float32 storage; ``gradient_float32_error`` in
the manifest says how far the authors' own float32 gradient is from it: the round-off float32
allows). ``manifest.json`` records the authors' commits, the configuration files and every override
(channel counts reduced to keep the files small; layer structure, kernels and dilations as in the
papers).

Usage (an interpreter with torch, numpy, omegaconf and h5py; not the project's environment)::

    python -m benchmarks.parity --peers /tmp/peers            # every case
    python -m benchmarks.parity --peers /tmp/peers --cases atommic_rim_gru_33x27_line
    python -m benchmarks.parity --peers /tmp/peers --cases fastmri_varnet_33x27_line

The default ``--out`` replaces the shipped goldens. To check mrirecon against another copy of the
authors' code without touching them, write elsewhere and run the parity tests on that folder (in
the project's environment)::

    python -m benchmarks.parity --peers /tmp/peers --out /tmp/goldens
    MRIRECON_PARITY_GOLDENS=/tmp/goldens pytest tests/models/test_parity.py

``--peers`` holds ``direct/``, ``atommic/``, ``mridc/`` and ``fastmri/``: trees exported with
``git archive``, each with a ``.peer_commit`` file naming the commit (only the families of the cases
asked for are needed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.parity_cases import (
    CASES,
    VARNET_OPTIONS,
    Case,
    inputs_digest,
    make_inputs,
    output_grid,
    pack_parameters,
)
from benchmarks.peer_code import (
    DirectEngine,
    load_atommic,
    load_direct,
    load_fastmri,
    load_mridc,
    peer_commit,
)

GOLDENS = Path(__file__).resolve().parents[1] / "tests" / "models" / "goldens"
MANIFEST = "manifest.json"

#: Reduced channel counts (the papers': 64 for RIM/CIRIM; 128 for RecurrentVarNet, RSI 32/32/64/64,
#: coil U-Net 8 first-level filters). Layer structure, kernels and dilations are the papers'.
RIM_CHANNELS = 8
RVN_HIDDEN = 6
RVN_INITIALIZER_CHANNELS = [4, 4, 8, 8]
UNET_FILTERS = 1
# fastMRI's VarNet is reduced in benchmarks.parity_cases.VARNET_OPTIONS (its defaults: 12 cascades
# of chans 18, pools 4; sens_chans 8, sens_pools 4).

#: Perturbation of every parameter after the authors' initialisation: ``p += PERTURB·s·N(0, 1)``
#: with ``s = max(mean |p|, 0.1)`` (a fixed generator per case).
PERTURB = 0.2


# ----------------------------------------------------------------------------------------------
# Building and running one case
# ----------------------------------------------------------------------------------------------
@dataclass
class Run:
    """What a case produced."""

    config: dict[str, Any]
    state: dict[str, dict[str, Any]]  # checkpoint layout: {top-level key: state dict}
    steps: list[list[Any]]  # [cascade][time step] complex (1, H, W), attached to the graph
    parameters: dict[str, dict[str, Any]]  # same layout as ``state``: the live parameters
    centered: bool
    aux: dict[str, Any] = field(default_factory=dict)


def _perturb(modules: Sequence[Any], seed: int) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in modules:
            for _, p in sorted(module.named_parameters()):
                scale = max(float(p.abs().mean()), 0.1)
                p.add_(PERTURB * scale * torch.randn(p.shape, generator=generator))


def _stacked(x: np.ndarray) -> Any:
    import torch

    return torch.view_as_real(torch.from_numpy(x)).contiguous()


def _authors_mask(mask: np.ndarray, height: int) -> Any:
    """mrirecon's mask as the authors take it: ``(1, 1, H, W, 1)`` float."""
    import torch

    full = np.broadcast_to(mask, (1, 1, height, mask.shape[-1]))
    return torch.from_numpy(np.ascontiguousarray(full, dtype=np.float32)).unsqueeze(-1)


def _rim_config(peers: Path, case: Case) -> tuple[dict[str, Any], str]:
    from omegaconf import OmegaConf

    if case.family == "atommic":
        base = "rim.yaml" if case.options["num_cascades"] == 1 else "cirim.yaml"
        path = peers / "atommic" / "projects" / "REC" / "fastMRIBrainsMulticoil" / "conf" / "train" / base
    else:
        path = (
            peers / "mridc" / "projects" / "reconstruction" / "model_zoo" / "conf" / "base_cirim_train.yaml"
        )
    model = OmegaConf.to_container(OmegaConf.load(path).model, resolve=True)
    assert isinstance(model, dict)
    keep = [
        *("recurrent_layer", "conv_filters", "conv_kernels", "conv_dilations", "conv_bias"),
        *("recurrent_filters", "recurrent_kernels", "recurrent_dilations", "recurrent_bias", "depth"),
        *("time_steps", "conv_dim", "num_cascades", "no_dc", "keep_prediction", "dimensionality"),
        *("coil_combination_method", "fft_centered", "fft_normalization", "spatial_dims", "coil_dim"),
        "consecutive_slices",
    ]
    config = {k: model[k] for k in keep if k in model}
    config.update(case.options)
    config["conv_filters"] = [RIM_CHANNELS, RIM_CHANNELS, model["conv_filters"][2]]
    config["recurrent_filters"] = [RIM_CHANNELS, RIM_CHANNELS, model["recurrent_filters"][2]]
    # fastMRI brain physics for both (mridc's file says uncentred "backward" FFTs, which mrirecon
    # expresses only by rescaling the k-space) and no learned coil-map network.
    config.update(fft_centered=True, fft_normalization="ortho", spatial_dims=[-2, -1], coil_dim=1)
    if case.family == "mridc":
        # mridc's file spells it keep_eta: true; its CIRIM reads keep_prediction (None would make
        # every later cascade Fourier-transform an image as if it were k-space).
        config["keep_prediction"] = True
    return config, str(path.relative_to(peers))


def run_rim(peers: Path, case: Case, inputs: dict[str, np.ndarray], dtype: Any = None) -> Run:
    """ATOMMIC's or mridc's CIRIM on ``inputs``, in ``dtype`` (default float32; the weights are made
    in float32 either way, so a float64 run has the same weights exactly)."""
    import torch
    from omegaconf import OmegaConf

    dtype = dtype or torch.float32

    config, source = _rim_config(peers, case)
    module = load_atommic(peers / "atommic") if case.family == "atommic" else load_mridc(peers / "mridc")
    torch.manual_seed(case.seed)
    model = module.CIRIM(OmegaConf.create(config), trainer=None)
    _perturb([model], case.seed + 1000)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model = model.to(dtype)
    y = _stacked(inputs["masked_kspace"]).to(dtype)
    maps = _stacked(inputs["coil_maps"]).to(dtype)
    mask = _authors_mask(inputs["mask"], case.height).to(dtype)
    if case.family == "atommic":
        steps = model(y, maps, mask, None, 1.0)
    else:
        target = torch.zeros(1, case.height, case.width, dtype=torch.complex64)
        steps = next(model(y, maps, mask, None, target))
    top = "state_dict"  # a Lightning checkpoint's layout
    config["source_file"] = source
    return Run(
        config,
        {top: state},
        [list(cascade) for cascade in steps],
        {top: dict(model.named_parameters())},
        centered=True,
    )


def _direct_config(peers: Path, case: Case) -> tuple[dict[str, Any], dict[str, Any] | None, bool, str]:
    from omegaconf import OmegaConf

    path = peers / "direct" / "projects" / "cvpr2022_recurrentvarnet" / "calgary_campinas" / "configs"
    path = path / case.options["config"]
    loaded: Any = OmegaConf.load(path)  # typed loosely: omegaconf is optional (benchmarks only)
    model: Any = OmegaConf.to_container(loaded.model, resolve=True)
    assert isinstance(model, dict)
    model.pop("model_name")
    model["recurrent_hidden_channels"] = RVN_HIDDEN
    if model.get("learned_initializer"):
        model["initializer_channels"] = list(RVN_INITIALIZER_CHANNELS)
    unet: Any = None
    extra = loaded.get("additional_models")
    if extra is not None and "sensitivity_model" in extra:
        unet = OmegaConf.to_container(extra.sensitivity_model, resolve=True)
        assert isinstance(unet, dict)
        unet.pop("model_name")
        unet["num_filters"] = UNET_FILTERS
    forward = str(loaded.physics.forward_operator)
    if forward not in ("fft2(centered=False)", "fft2"):
        raise SystemExit(f"{path}: unexpected forward operator {forward!r}")
    centered = forward == "fft2"
    return model, unet, centered, str(path.relative_to(peers))


def _allow_float64_fft(transforms: Any) -> None:
    """DIRECT's ``fft2``/``ifft2`` refuse anything but complex64 (a guard against half precision,
    ``verify_fft_dtype_possible``); let complex128 through too, for the float64 reference run."""
    import torch

    guard = transforms.verify_fft_dtype_possible
    if not getattr(guard, "allows_float64", False):

        def allow(data: Any, dims: Any) -> bool:
            return bool(data.dtype == torch.complex128 or guard(data, dims))

        allow.allows_float64 = True  # type: ignore[attr-defined]
        transforms.verify_fft_dtype_possible = allow


def run_rvn(peers: Path, case: Case, inputs: dict[str, np.ndarray], dtype: Any = None) -> Run:
    """DIRECT's RecurrentVarNet (and coil-map refinement) on ``inputs``, in ``dtype`` (as
    :func:`run_rim`)."""
    import torch

    dtype = dtype or torch.float32
    direct = load_direct(peers / "direct")
    transforms = direct["transforms"]
    _allow_float64_fft(transforms)
    config, unet_config, centered, source = _direct_config(peers, case)
    forward = partial(transforms.fft2, centered=centered, normalized=True)
    backward = partial(transforms.ifft2, centered=centered, normalized=True)
    torch.manual_seed(case.seed)
    model = direct["recurrentvarnet"].RecurrentVarNet(forward, backward, **config)
    unet = direct["unet"].UnetModel2d(**unet_config) if unet_config is not None else None
    _perturb([model] + ([unet] if unet is not None else []), case.seed + 1000)
    state = {"model": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    if unet is not None:
        state["sensitivity_model"] = {k: v.detach().clone() for k, v in unet.state_dict().items()}
        unet = unet.to(dtype)
    model = model.to(dtype)

    y = _stacked(inputs["masked_kspace"]).to(dtype)
    maps = _stacked(inputs["coil_maps"]).to(dtype)
    mask = _authors_mask(inputs["mask"], case.height).to(dtype)
    aux: dict[str, Any] = {}
    if unet is not None:
        maps = DirectEngine(direct, unet).compute_sensitivity_map(maps)
        aux["refined_coil_maps"] = torch.view_as_complex(maps.contiguous())
    else:  # the engine normalises the maps in any case (they already are: Σ|S|² = 1)
        maps = DirectEngine(direct, None).compute_sensitivity_map(maps)

    steps: list[Any] = []

    def record(_module: Any, args: tuple[Any, ...], output: tuple[Any, Any]) -> None:
        # The image of step t as mrirecon returns it: Sᴴ F⁻¹ k_t (DIRECT's own operators).
        image = transforms.reduce_operator(backward(output[0], dim=(2, 3)), args[3], dim=1)
        steps.append(torch.view_as_complex(image.contiguous()))

    hooks = [block.register_forward_hook(record) for block in model.block_list]
    model(y, mask, maps)
    for hook in hooks:
        hook.remove()
    parameters = {"model": dict(model.named_parameters())}
    if unet is not None:
        parameters["sensitivity_model"] = dict(unet.named_parameters())
    config = {**config, "source_file": source, "sensitivity_model": unet_config}
    config["operators"] = f"fft2/ifft2(centered={centered}, normalized=True)"
    return Run(config, state, [steps], parameters, centered=centered, aux=aux)


def centre_block(mask: np.ndarray) -> tuple[int, int]:
    """The fully sampled run of a line mask around column ``W // 2``, as ``[lo, hi)`` (the block
    mrirecon's E2E-VarNet calibrates its coil maps from)."""
    line = np.asarray(mask, dtype=bool).reshape(-1)
    lo = hi = line.size // 2
    if line[lo]:
        while lo > 0 and line[lo - 1]:
            lo -= 1
        while hi < line.size and line[hi]:
            hi += 1
    return lo, hi


def run_varnet(peers: Path, case: Case, inputs: dict[str, np.ndarray], dtype: Any = None) -> Run:
    """fastMRI's ``VarNet`` on ``inputs``, in ``dtype`` (as :func:`run_rim`).

    fastMRI is given ``num_low_frequencies`` = the width of the mask's fully sampled centre, as its
    training does (the mask function's centre), after checking that its symmetric block
    ``[(W − n + 1) // 2, … + n)`` is the fully sampled run around the centre that mrirecon takes.
    The steps are the final image (one cascade of one step); ``aux`` holds the learned coil maps and
    the multi-coil k-space after every cascade.
    """
    import torch

    dtype = dtype or torch.float32
    varnet = load_fastmri(peers / "fastmri")
    options = case.options
    if case.mask != "line":
        raise SystemExit(f"{case.name}: fastMRI's VarNet calibrates from lines only")
    lo, hi = centre_block(inputs["mask"])
    low = hi - lo
    if (lo, hi) != ((case.width - low + 1) // 2, (case.width - low + 1) // 2 + low):
        raise SystemExit(f"{case.name}: the mask's centre [{lo}, {hi}) is not fastMRI's symmetric block")
    config = {k: options[k] for k in ("num_cascades", "sens_chans", "sens_pools", "chans", "pools")}
    torch.manual_seed(case.seed)
    model = varnet.VarNet(**config, mask_center=True)
    _perturb([model], case.seed + 1000)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model = model.to(dtype)
    y = _stacked(inputs["masked_kspace"]).to(dtype)
    mask = _authors_mask(inputs["mask"], 1).bool()  # (1, 1, 1, W, 1), as fastMRI's mask functions
    cascades: list[Any] = []
    hooks = [
        block.register_forward_hook(lambda _m, _a, out: cascades.append(torch.view_as_complex(out)))
        for block in model.cascades
    ]
    maps = torch.view_as_complex(model.sens_net(y, mask, low).contiguous())
    image = model(y, mask, low)  # (1, H, W), real: the RSS of the final coil images
    for hook in hooks:
        hook.remove()
    aux = {"coil_maps": maps, "cascade_kspace": torch.stack(cascades)}
    config = {**config, "mask_center": True, "num_low_frequencies": low}
    config["source_file"] = "fastmri/models/varnet.py (class VarNet)"
    return Run(config, {"model": state}, [[image]], {"model": dict(model.named_parameters())}, True, aux)


def loss_of(steps: Sequence[Sequence[Any]]) -> Any:
    """The loss whose gradient is stored: Σ over every returned estimate of mean |x|."""
    return sum(x.abs().mean() for cascade in steps for x in cascade)


def _centered(case: Case) -> bool:
    return case.family != "direct"  # DIRECT's CC configs use uncentred FFTs (checked in _direct_config)


def _loss_and_gradients(run: Run, names: Sequence[tuple[str, str]]) -> tuple[float, list[np.ndarray]]:
    """The loss of ``run`` and its gradient with respect to the parameters ``names`` (zero if unused)."""
    import torch

    loss = loss_of(run.steps)
    params = [run.parameters[top][key] for top, key in names]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return float(loss.detach()), [
        (torch.zeros_like(p) if g is None else g).detach().double().numpy() for p, g in zip(params, grads)
    ]


def _scaled_difference(values: Sequence[np.ndarray], exact: Sequence[np.ndarray]) -> float:
    """max |value − exact| / max(1, max |exact|) over all the arrays (the tests' measure)."""
    scale = max(1.0, max(float(np.abs(e).max(initial=0.0)) for e in exact))
    return max(float(np.abs(v - e).max(initial=0.0)) for v, e in zip(values, exact)) / scale


def generate(peers: Path, case: Case, out: Path) -> dict[str, Any]:
    """Run one case and write ``<out>/<case>.npz``; returns its manifest entry.

    The case runs twice with the same weights and inputs: in float32 (the state dict, the estimates
    and the loss stored) and in float64, whose gradient is the one stored, as the exact gradient.
    The manifest records how far the authors' own float32 gradient is from it
    (``gradient_float32_error``, scaled as the tests scale): the round-off that float32 itself
    allows, which the tests take as the measure of a float32 gradient.
    """
    import torch

    torch.set_num_threads(1)
    inputs = make_inputs(case, centered=_centered(case))
    runner = {"direct": run_rvn, "fastmri": run_varnet}.get(case.family, run_rim)
    run = runner(peers, case, inputs)
    exact = runner(peers, case, inputs, torch.float64)
    if run.centered != _centered(case):
        raise SystemExit(f"{case.name}: FFT convention differs from the one the inputs were made for")
    names = [(top, k) for top, params in run.parameters.items() for k in params]
    for top, key in names:
        if not torch.equal(run.state[top][key], exact.state[top][key]):
            raise SystemExit(f"{case.name}: the float64 run has other weights ({top}/{key})")
    loss, grads32 = _loss_and_gradients(run, names)
    loss64, grads = _loss_and_gradients(exact, names)

    arrays: dict[str, np.ndarray] = {"input/mask": inputs["mask"]}
    rows, cols = np.arange(case.height), np.arange(case.width)
    if case.full_outputs:
        arrays["input/masked_kspace"] = inputs["masked_kspace"]
        arrays["input/coil_maps"] = inputs["coil_maps"]
    else:
        rows, cols = output_grid(case.height), output_grid(case.width)
        arrays["output/rows"], arrays["output/cols"] = rows, cols
    for top, state in run.state.items():  # the state dicts hold parameters only (no buffers)
        if set(state) != set(run.parameters[top]):
            raise SystemExit(f"{case.name}: {top} has buffers besides its parameters")
    states = [run.state[top][key].numpy() for top, key in names]
    arrays.update(pack_parameters([f"{top}/{key}" for top, key in names], states, grads))
    arrays["output/steps"] = np.stack(
        [np.stack([x.detach().numpy()[:, rows][:, :, cols] for x in cascade]) for cascade in run.steps]
    ).astype(np.complex64)
    for key, value in run.aux.items():
        if case.full_outputs:
            arrays[f"aux/{key}"] = value.detach().numpy().astype(np.complex64)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / f"{case.name}.npz", **arrays)  # type: ignore[arg-type]
    return {
        "family": case.family,
        "height": case.height,
        "width": case.width,
        "coils": case.coils,
        "mask": case.mask,
        "seed": case.seed,
        "fft_centered": run.centered,
        "inputs_sha256": inputs_digest(inputs),
        "inputs_stored": case.full_outputs,
        "outputs": "full" if case.full_outputs else "grid (output/rows, output/cols)",
        "cascades": len(run.steps),
        "time_steps": len(run.steps[0]),
        "loss": loss,
        "loss_float64": loss64,
        "gradient_float32_error": _scaled_difference(grads32, grads),
        "config": run.config,
    }


def _iter_cases(names: Sequence[str] | None) -> Iterator[Case]:
    for name in names or list(CASES):
        if name not in CASES:
            raise SystemExit(f"unknown case {name!r}; known: {', '.join(CASES)}")
        yield CASES[name]


AUTHORS = {
    "atommic": "wdika/atommic",
    "mridc": "wdika/mridc",
    "direct": "NKI-AI/direct",
    "fastmri": "facebookresearch/fastMRI",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--peers", type=Path, required=True, help="folder with direct/, atommic/, mridc/, fastmri/"
    )
    parser.add_argument("--out", type=Path, default=GOLDENS, help="where the goldens go")
    parser.add_argument("--cases", nargs="*", help="case names (default: all)")
    args = parser.parse_args(argv)
    import torch

    manifest_path = args.out / MANIFEST
    manifest: dict[str, Any] = (
        json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"cases": {}}
    )
    families = {case.family for case in _iter_cases(args.cases)}
    manifest.setdefault("authors", {})
    for family in sorted(families):
        manifest["authors"][family] = {
            "repository": AUTHORS[family],
            "commit": peer_commit(args.peers / family),
        }
    manifest["generated_with"] = {"torch": torch.__version__, "numpy": np.__version__}
    manifest["reduced_channels"] = {
        "rim_cirim_channels": f"{RIM_CHANNELS} (papers: 64)",
        "rvn_hidden_channels": f"{RVN_HIDDEN} (paper: 128)",
        "rvn_initializer_channels": f"{RVN_INITIALIZER_CHANNELS} (paper: [32, 32, 64, 64])",
        "coil_unet_filters": f"{UNET_FILTERS} (paper: 8)",
        "varnet": (
            f"{VARNET_OPTIONS['num_cascades']} cascades of chans {VARNET_OPTIONS['chans']}, pools "
            f"{VARNET_OPTIONS['pools']}; sens_chans {VARNET_OPTIONS['sens_chans']}, sens_pools "
            f"{VARNET_OPTIONS['sens_pools']} (fastMRI: 12 cascades of chans 18, pools 4; sens_chans 8, "
            "sens_pools 4)"
        ),
    }
    manifest["weights"] = (
        "the authors' initialisation (torch.manual_seed(seed)), then every parameter p += "
        f"{PERTURB}·max(mean|p|, 0.1)·N(0, 1) (torch.Generator seeded with seed + 1000)"
    )
    manifest["loss"] = "Σ over every returned estimate (cascade, time step) of mean |x|"
    manifest["precision"] = (
        "weights, inputs, estimates and loss: the authors' float32 run; params/grad: the gradient of "
        "the same loss from the authors' float64 run (same weights and inputs), stored as float32; "
        "loss_float64: that run's loss; gradient_float32_error: max |float32 gradient − float64 "
        "gradient| / max(1, max |float64 gradient|) of the authors' own modules"
    )
    for case in _iter_cases(args.cases):
        print(f"{case.name} ...", flush=True)
        manifest["cases"][case.name] = generate(args.peers, case, args.out)
        size = (args.out / f"{case.name}.npz").stat().st_size
        print(f"  wrote {case.name}.npz ({size / 1024:.0f} KiB)", flush=True)
    manifest["cases"] = dict(sorted(manifest["cases"].items()))
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
