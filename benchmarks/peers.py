"""The reference implementations timed beside mrirecon's models (``benchmarks.models --peers DIR``).

Each :class:`Peer` builds one of the authors' models from the exported trees under ``DIR`` (see
:mod:`benchmarks.peer_code`) at the configuration of the paper's or the authors' training file, and
adapts the common inputs to it. Each :class:`Pair` names the mrirecon configuration with the same
parameter count and the loss both sides are timed with. :func:`compare` turns one run's rows into
ratios (reference seconds / mrirecon seconds: above 1, mrirecon is faster) and checks them against
the goals in :data:`GOALS`.

Same conditions on both sides: the same complex k-space, coil maps (Σ|S|² = 1) and 4× equispaced
line mask (a boolean ``(1, 1, 1, W, 1)`` tensor for the references, the same lines as a float
``(1, 1, 1, W)`` mask for mrirecon), ``torch.no_grad`` for inference, ``model.train()`` and the same
loss (the mean magnitude of the same number of returned estimates) for training, one fresh process
per measurement with the same thread count and the same allocator environment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from benchmarks.peer_code import load_atommic, load_direct, peer_commit


@dataclass(frozen=True)
class Peer:
    """One reference model: how to build it, feed it and read its estimates."""

    label: str
    source: str  # the authors' repository
    family: str  # folder under the peers directory
    config: dict[str, Any]
    parameters: int  # the count the paper configuration gives
    build: Callable[[Path], torch.nn.Module]
    call: Callable[[torch.nn.Module, dict[str, torch.Tensor]], Any]
    images: Callable[[Any], list[torch.Tensor]]  # estimates the training loss is taken over
    prepare: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


def _stacked(x: torch.Tensor) -> torch.Tensor:
    """Complex ``(...)`` → real ``(..., 2)``, the layout both references use."""
    return torch.view_as_real(x).contiguous()


def _direct_inputs(kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "masked_kspace": _stacked(kspace),  # (1, C, H, W, 2)
        "sampling_mask": mask.bool().unsqueeze(-1),  # (1, 1, 1, W, 1)
        "sensitivity_map": _stacked(maps),
    }


def _atommic_inputs(kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"y": _stacked(kspace), "sensitivity_maps": _stacked(maps), "mask": mask.bool().unsqueeze(-1)}


def _direct_operators(root: Path) -> tuple[Callable[..., Any], Callable[..., Any], dict[str, Any]]:
    """DIRECT's own centred, orthonormal FFTs (``fft2``/``ifft2`` defaults) and its modules."""
    direct = load_direct(root)
    transforms = direct["transforms"]
    forward = partial(transforms.fft2, centered=True, normalized=True)
    backward = partial(transforms.ifft2, centered=True, normalized=True)
    return forward, backward, direct


def _kspace_to_image(kspace: torch.Tensor) -> torch.Tensor:
    """Root-sum-of-squares image of DIRECT's returned k-space ``(1, C, H, W, 2)``, as its engine
    computes it for the loss (centred orthonormal inverse FFT)."""
    x = torch.view_as_complex(kspace.contiguous())
    x = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(x, dim=(2, 3)), norm="ortho"), dim=(2, 3))
    return x.abs().pow(2).sum(1).sqrt()


#: DIRECT's CVPR 2022 Calgary-Campinas RecurrentVarNet (``base_recurrentvarnet.yaml``) without the
#: sensitivity U-Net (mrirecon's pair has ``refine_coil_maps: false``).
DIRECT_RVN = {
    "num_steps": 8,
    "recurrent_hidden_channels": 128,
    "recurrent_num_layers": 4,
    "no_parameter_sharing": True,
    "learned_initializer": True,
    "initializer_initialization": "sense",
    "initializer_channels": (32, 32, 64, 64),
    "initializer_dilations": (1, 1, 2, 4),
    "initializer_multiscale": 3,
    "normalized": False,
}

#: DIRECT's RIM of the same paper's comparisons (``comparisons/base_rim.yaml``): 128 channels, 16
#: steps with shared weights.
DIRECT_RIM = {
    "hidden_channels": 128,
    "length": 16,
    "depth": 2,
    "no_parameter_sharing": False,
    "instance_norm": False,
    "dense_connect": False,
    "replication_padding": True,
    "image_initialization": "sense",
    "learned_initializer": False,
}

#: ATOMMIC's fastMRI brain ``cirim.yaml`` (model section) without the learned coil-map network.
ATOMMIC_CIRIM = {
    "recurrent_layer": "IndRNN",
    "conv_filters": [64, 64, 2],
    "conv_kernels": [5, 3, 3],
    "conv_dilations": [1, 2, 1],
    "conv_bias": [True, True, False],
    "recurrent_filters": [64, 64, 0],
    "recurrent_kernels": [1, 1, 0],
    "recurrent_dilations": [1, 1, 0],
    "recurrent_bias": [True, True, False],
    "depth": 2,
    "time_steps": 8,
    "conv_dim": 2,
    "num_cascades": 5,
    "no_dc": True,
    "keep_prediction": True,
    "accumulate_predictions": True,
    "dimensionality": 2,
    "coil_combination_method": "SENSE",
    "fft_centered": True,
    "fft_normalization": "ortho",
    "spatial_dims": [-2, -1],
    "coil_dim": 1,
}
#: ATOMMIC's fastMRI brain ``rim.yaml``: the CIRIM class with one cascade of ConvGRU cells.
ATOMMIC_RIM = {**ATOMMIC_CIRIM, "recurrent_layer": "GRU", "num_cascades": 1}


def _build_direct_rvn(root: Path) -> torch.nn.Module:
    forward, backward, direct = _direct_operators(root)
    module: torch.nn.Module = direct["recurrentvarnet"].RecurrentVarNet(forward, backward, **DIRECT_RVN)
    return module


def _build_direct_rim(root: Path) -> torch.nn.Module:
    forward, backward, direct = _direct_operators(root)
    module: torch.nn.Module = direct["rim"].RIM(forward, backward, **DIRECT_RIM)
    return module


def _build_atommic(config: dict[str, Any], root: Path) -> torch.nn.Module:
    from omegaconf import OmegaConf

    module: torch.nn.Module = load_atommic(root).CIRIM(OmegaConf.create(config), trainer=None)
    return module


def _call_direct_rim(model: torch.nn.Module, p: dict[str, torch.Tensor]) -> Any:
    return model(input_image=None, **p)


def _call_atommic(model: torch.nn.Module, p: dict[str, torch.Tensor]) -> Any:
    # No initial prediction: the first block forms the SENSE image itself; sigma 1.
    return model(p["y"], p["sensitivity_maps"], p["mask"], None, 1.0)


PEERS: dict[str, Peer] = {
    "direct_rvn": Peer(
        "DIRECT RecurrentVarNet",
        "NKI-AI/direct",
        "direct",
        DIRECT_RVN,
        6_918_424,
        _build_direct_rvn,
        lambda model, p: model(p["masked_kspace"], p["sampling_mask"], p["sensitivity_map"]),
        lambda out: [_kspace_to_image(out)],  # one estimate: its final k-space
        _direct_inputs,
    ),
    "direct_rim": Peer(
        "DIRECT RIM",
        "NKI-AI/direct",
        "direct",
        DIRECT_RIM,
        360_194,
        _build_direct_rim,
        _call_direct_rim,
        lambda out: [x.pow(2).sum(1).sqrt() for x in out[0]],  # every step, (1, 2, H, W) each
        _direct_inputs,
    ),
    "atommic_cirim": Peer(
        "ATOMMIC CIRIM",
        "wdika/atommic",
        "atommic",
        ATOMMIC_CIRIM,
        264_960,
        partial(_build_atommic, ATOMMIC_CIRIM),
        _call_atommic,
        lambda out: [x.abs() for cascade in out for x in cascade],
        _atommic_inputs,
    ),
    "atommic_rim": Peer(
        "ATOMMIC RIM (GRU)",
        "wdika/atommic",
        "atommic",
        ATOMMIC_RIM,
        94_080,
        partial(_build_atommic, ATOMMIC_RIM),
        _call_atommic,
        lambda out: [x.abs() for cascade in out for x in cascade],
        _atommic_inputs,
    ),
}


@dataclass(frozen=True)
class Pair:
    """An mrirecon configuration and the reference it is timed against."""

    label: str
    config: str  # configs/models/<config>.yaml
    peer: str  # key of PEERS
    #: "all": the loss is over every returned estimate; "last": over the final one only (DIRECT's
    #: RecurrentVarNet returns one estimate, so mrirecon's is trained on its final step too).
    loss: str = "all"


PAIRS: tuple[Pair, ...] = (
    Pair("RecurrentVarNet vs DIRECT", "recurrentvarnet", "direct_rvn", "last"),
    Pair("RIM 128 ch × 16 vs DIRECT RIM", "rim_direct", "direct_rim"),
    Pair("CIRIM vs ATOMMIC CIRIM", "cirim", "atommic_cirim"),
    Pair("RIM GRU vs ATOMMIC RIM", "rim", "atommic_rim"),
)

#: The goals a same-run comparison is checked against (issue: performance against the references).
GOALS = {
    "train": 2.0,  # reference fwd+bwd seconds / mrirecon's, plain
    "train_ckpt": 2.0,  # reference fwd+bwd (plain) / mrirecon's checkpointed
    "ckpt_overhead": 1.3,  # mrirecon checkpointed / plain: at most
    "inference": 2.0,
    "cs": 3.0,  # SigPy L1-wavelet CS seconds / the pretrained CIRIM's, same slice
}


def build_peer(name: str, peers_dir: Path) -> torch.nn.Module:
    """The reference model ``name`` built from the trees under ``peers_dir`` (raises SystemExit with
    the folder to export when a tree is missing)."""
    peer = PEERS[name]
    root = peers_dir / peer.family
    if not (root / peer.family).is_dir():
        raise SystemExit(
            f"{root}: no exported {peer.source} tree (git archive it there, see benchmarks.peer_code)"
        )
    return peer.build(root)


def commits(peers_dir: Path) -> dict[str, str]:
    """The exported commit of each reference family present under ``peers_dir``."""
    out = {}
    for family in sorted({peer.family for peer in PEERS.values()}):
        root = peers_dir / family
        if root.is_dir():
            out[family] = peer_commit(root)
    return out


def _seconds(rows: Sequence[dict[str, Any]], key: tuple[str, str, str, str]) -> float | None:
    for row in rows:
        if (row.get("config"), row.get("size"), row.get("mode"), row.get("allocator")) == key:
            value = row.get("seconds")
            return float(value) if value else None
    return None


def compare(
    rows: Sequence[dict[str, Any]], allocators: Sequence[str], sizes: Sequence[str]
) -> list[dict[str, Any]]:
    """Ratios and goal checks of one run, one entry per (pair, size, allocator).

    ``rows`` carry ``config`` (an mrirecon config name, or ``peer:<name>`` for a reference),
    ``size``, ``mode``, ``allocator`` and ``seconds``. A ratio whose reference (or mrirecon) figure is
    missing is ``None`` and its goal ``None`` (not measured), never passed.
    """
    out = []
    timed = {row.get("config") for row in rows}
    for pair in PAIRS:
        if pair.config not in timed and f"peer:{pair.peer}" not in timed:
            continue  # a run of other models (--models): not a pair left unmeasured
        for size in sizes:
            for allocator in allocators:
                ref = {
                    m: _seconds(rows, (f"peer:{pair.peer}", size, m, allocator))
                    for m in ("inference", "train")
                }
                ours = {
                    m: _seconds(rows, (pair.config, size, m, allocator))
                    for m in ("inference", "train", "train_ckpt")
                }
                ratios = {
                    "inference": _ratio(ref["inference"], ours["inference"]),
                    "train": _ratio(ref["train"], ours["train"]),
                    "train_ckpt": _ratio(ref["train"], ours["train_ckpt"]),
                }
                overhead = _ratio(ours["train_ckpt"], ours["train"])
                goals = {key: None if value is None else value >= GOALS[key] for key, value in ratios.items()}
                goals["ckpt_overhead"] = None if overhead is None else overhead <= GOALS["ckpt_overhead"]
                out.append(
                    {
                        "pair": pair.label,
                        "config": pair.config,
                        "peer": pair.peer,
                        "size": size,
                        "allocator": allocator,
                        "reference_seconds": ref,
                        "seconds": ours,
                        "ratios": ratios,
                        "ckpt_overhead": overhead,
                        "goals": goals,
                    }
                )
    return out


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return numerator / denominator


def compare_cs(rows: Sequence[dict[str, Any]], allocators: Sequence[str]) -> list[dict[str, Any]]:
    """SigPy CS seconds / the pretrained CIRIM's on the same real slice, per allocator profile."""
    out = []
    for allocator in allocators:
        cs = _seconds(rows, ("sigpy_l1wavelet_cs", "real_230x180", "inference", allocator))
        if cs is None:
            continue
        model = next(
            (
                row
                for row in rows
                if row.get("size") == "real_230x180"
                and row.get("config") != "sigpy_l1wavelet_cs"
                and row.get("allocator") == allocator
            ),
            None,
        )
        ours = float(model["seconds"]) if model and model.get("seconds") else None
        ratio = _ratio(cs, ours)
        out.append(
            {
                "model": model["config"] if model else None,
                "allocator": allocator,
                "cs_seconds": cs,
                "seconds": ours,
                "ratio": ratio,
                "goal": None if ratio is None else ratio >= GOALS["cs"],
            }
        )
    return out


BEGIN = "<!-- begin: python -m benchmarks.models --peers -->"
END = "<!-- end: python -m benchmarks.models --peers -->"
SIZE_LABELS = {
    "brain": "218×170, 8 coils",
    "knee": "320×320, 15 coils",
    "knee_full": "640×368, 15 coils",
    "tiny": "24×20, 2 coils",
}


def _cell(reference: float | None, ours: float | None, ratio: float | None, goal: bool | None) -> str:
    if ours is None and reference is None:
        return "–"
    text = f"{_s(reference)} / {_s(ours)}"
    if ratio is not None:
        text += f" = **{ratio:.2f}×**" + ("" if goal else " ✗")
    return text


def _s(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.2f} s"


def markdown(payload: dict[str, Any]) -> str:
    """The comparison section of docs/benchmarks.md, from one ``--peers`` run's JSON payload."""
    machine = payload["machine"]
    commits = ", ".join(f"{family} {commit[:10]}" for family, commit in payload["peers"]["commits"].items())
    lines = [
        BEGIN,
        f"`{payload['command']}`, {payload.get('date', '')} on {machine.get('cpu', machine['processor'])}, "
        f"{machine.get('cores', '?')} cores ({machine['platform']}, torch {machine['torch']}, "
        f"{payload['threads']} thread(s) per process); "
        f"references exported at {commits}.",
        "",
        "Seconds per slice, reference / mrirecon = ratio (above 1: mrirecon is faster); ✗ marks a ratio "
        f"below its goal (inference and training ≥ {GOALS['inference']:g}×, checkpointed training ≥ "
        f"{GOALS['train_ckpt']:g}× the reference's plain training and ≤ {GOALS['ckpt_overhead']:g}× "
        "mrirecon's plain; n/a: that side could not run, see the JSON).",
        "",
        "| pair | size | glibc malloc | inference | training | training, checkpointed "
        "| checkpointed / plain |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for entry in payload["comparison"]:
        ref, ours, ratios, goals = (entry[k] for k in ("reference_seconds", "seconds", "ratios", "goals"))
        overhead = entry["ckpt_overhead"]
        lines.append(
            f"| {entry['pair']} | {SIZE_LABELS.get(entry['size'], entry['size'])} | {entry['allocator']} | "
            f"{_cell(ref['inference'], ours['inference'], ratios['inference'], goals['inference'])} | "
            f"{_cell(ref['train'], ours['train'], ratios['train'], goals['train'])} | "
            f"{_cell(ref['train'], ours['train_ckpt'], ratios['train_ckpt'], goals['train_ckpt'])} | "
            + ("–" if overhead is None else f"{overhead:.2f}" + ("" if goals["ckpt_overhead"] else " ✗"))
            + " |"
        )
    for entry in payload.get("cs_comparison", []):
        lines.append(
            f"| SigPy L1-wavelet CS (100 it.) vs {entry['model']} | real 230×180, 8 coils "
            f"| {entry['allocator']} | "
            f"{_cell(entry['cs_seconds'], entry['seconds'], entry['ratio'], entry['goal'])} | | | |"
        )
    checked = [g for e in payload["comparison"] for g in e["goals"].values() if g is not None]
    checked += [e["goal"] for e in payload.get("cs_comparison", []) if e["goal"] is not None]
    missing = sum(g is None for e in payload["comparison"] for g in e["goals"].values())
    lines += [
        "",
        f"Goals met: {sum(checked)} of {len(checked)} measured ({missing} not measurable in this run).",
        END,
    ]
    return "\n".join(lines)


def check_docs_markers(path: Path) -> str:
    """The text of ``path``, which must hold the :data:`BEGIN` … :data:`END` markers."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: no '{BEGIN}' … '{END}' markers to replace")
    return text


def write_docs_section(path: Path, section: str) -> None:
    """Replace the text between :data:`BEGIN` and :data:`END` in ``path`` with ``section``."""
    text = check_docs_markers(path)
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(head + section + tail)
