"""Export a trained run as a shipped pretrained model (safetensors with its model card's figures).

    python -m benchmarks.pretrained cirim-brain runs/cirim_brain --quality benchmarks/results/quality.json \
        --label cirim-brain --wall-hours 5.2 --hardware "2-core x86-64 CPU"
    python -m benchmarks.pretrained cirim-brain --refresh --quality benchmarks/results/quality.json

Reads the run's best checkpoint (``checkpoints/best.ckpt``, else ``last.ckpt``), or the checkpoint file
given; refuses weights other than the ones the quality JSON scored under ``--label`` (it records each
model's weights sha256). From it: the model, its config,
the optimiser steps it was trained for and its training config; takes the quality figures of the
model (``--label`` in the quality benchmark's JSON) and of CS on the real-anatomy set; writes
``mrirecon/models/weights/<name>.safetensors`` with a card in its header (docs/pretrained.md shows
the same figures). Nothing is pickled: the weights are tensors, the card is JSON text.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from mrirecon.models.checkpoints import load_checkpoint_model, read_checkpoint
from mrirecon.models.io import weights_sha256
from mrirecon.models.pretrained import PRETRAINED, WEIGHTS, card_headline, write_safetensors_model
from mrirecon.models.registry import parameter_count


def _quality(data: dict[str, Any], label: str) -> dict[str, Any]:
    """The model's and CS's figures per set and mask, from the quality benchmark's results."""
    out: dict[str, Any] = {}
    for set_name, models in data.get("sets", {}).items():
        mine, cs = models.get(label, {}), models.get("CS", {})
        out[set_name] = {
            mask: {
                "head_psnr": round(figures["head_psnr"], 2),
                "head_ssim": round(figures["head_ssim"], 4),
                "lesions_kept": f"{figures['lesions_kept']}/{figures['lesions']}",
                "seconds_per_slice": round(figures["seconds_per_slice"], 3),
                "cs_head_psnr": round(cs[mask]["head_psnr"], 2) if mask in cs else None,
                "cs_head_ssim": round(cs[mask]["head_ssim"], 4) if mask in cs else None,
            }
            for mask, figures in mine.items()
        }
    return out


def _check_scored(
    data: dict[str, Any], path: Path, label: str, checkpoint: Path, model: torch.nn.Module
) -> None:
    """Refuse to ship weights other than the ones the quality figures (``data``, read from
    ``path``) were measured on."""
    scored = data.get("models", {}).get(label)
    if scored is None:
        raise SystemExit(
            f"{path} does not record which weights {label!r} was scored with; rerun the quality "
            "benchmark (it records each model's weights) and merge it with the baselines"
        )
    if scored["weights_sha256"] != weights_sha256(model):
        raise SystemExit(
            f"{checkpoint} holds other weights than the ones {path} scored as {label!r} "
            f"({scored['source']}); export that checkpoint, or score this one"
        )
    # a card compares the model with CS on every mask it quotes
    missing = [
        f"{set_name} {mask}"
        for set_name, models in data.get("sets", {}).items()
        for mask in models.get(label, {})
        if mask not in models.get("CS", {})
    ]
    if missing:
        raise SystemExit(
            f"{path} has no CS figures beside {label!r} for {', '.join(missing)} (a --models-only "
            "run); merge it with a baselines run of the same sets (python -m benchmarks.quality --merge)"
        )


def _checkpoint(run: Path) -> Path:
    """A checkpoint file as given; for a run folder, its best checkpoint, else its last."""
    if run.is_file():
        return run
    best = run / "checkpoints" / "best.ckpt"
    return best if best.is_file() else run / "checkpoints" / "last.ckpt"


def export(args: argparse.Namespace) -> Path:
    if args.name not in PRETRAINED:
        raise SystemExit(f"unknown pretrained name {args.name!r}; known: {', '.join(PRETRAINED)}")
    checkpoint = _checkpoint(Path(args.run))
    name, model = load_checkpoint_model(checkpoint)
    data = read_checkpoint(checkpoint)
    record = data.get("mrirecon", {})
    recipe = args.recipe or f"configs/pretrained/{args.name.replace('-', '_')}.yaml"
    stages: list[dict[str, Any]] = [{"recipe": recipe, "optimizer_steps": int(data.get("global_step", 0))}]
    bases, base_recipes = args.base or [], args.base_recipe or []
    if len(bases) != len(base_recipes):
        raise SystemExit("give one --base-recipe per --base, in the same order")
    for base_run, base_recipe in zip(reversed(bases), reversed(base_recipes)):
        # a fine-tune: the runs it started from come first, oldest first
        base = read_checkpoint(_checkpoint(Path(base_run)))
        stages.insert(0, {"recipe": base_recipe, "optimizer_steps": int(base.get("global_step", 0))})
    quality: dict[str, Any] = {}
    if args.quality:
        label, path = args.label or args.name, Path(args.quality)
        results = json.loads(path.read_text())
        _check_scored(results, path, label, checkpoint, model)
        quality = _quality(results, label)
    card = {
        "name": args.name,
        "model": name,
        "parameters": parameter_count(model),
        "recipe": recipe,
        "training": {
            "optimizer_steps": sum(stage["optimizer_steps"] for stage in stages),
            "stages": stages,
            "wall_hours": args.wall_hours,
            "hardware": args.hardware,
            "torch": torch.__version__,
            "data": args.data,
        },
        "training_config": record.get("training_config", {}),
        "quality": quality,
        "headline": card_headline({"quality": quality}),
        "use": "For research use only, not for diagnosis.",
    }
    target = Path(args.output) if args.output else WEIGHTS / PRETRAINED[args.name].file
    write_safetensors_model(target, name, model.config, model, card)
    print(json.dumps({k: v for k, v in card.items() if k != "training_config"}, indent=1))
    print(f"wrote {target} ({target.stat().st_size / 1e6:.2f} MB) from {checkpoint}")
    return target


def refresh(args: argparse.Namespace) -> Path:
    """Replace the quality figures of a shipped model's card with those of a newer quality run
    (the same weights: refused otherwise); the rest of the card and the weights stay as they are."""
    from mrirecon.models.pretrained import read_safetensors_model

    if args.name not in PRETRAINED:
        raise SystemExit(f"unknown pretrained name {args.name!r}; known: {', '.join(PRETRAINED)}")
    if not args.quality:
        raise SystemExit("--refresh needs --quality: the JSON with the new figures")
    target = Path(args.output) if args.output else WEIGHTS / PRETRAINED[args.name].file
    name, model, card = read_safetensors_model(target)
    label, path = args.label or args.name, Path(args.quality)
    results = json.loads(path.read_text())
    _check_scored(results, path, label, target, model)
    quality = _quality(results, label)
    card = {**card, "quality": quality, "headline": card_headline({"quality": quality})}
    write_safetensors_model(target, name, model.config, model, card)
    print(f"refreshed the figures of {target} from {path}")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the pretrained name (cirim-brain, rim-brain)")
    parser.add_argument("run", nargs="?", help="the training run folder (not with --refresh)")
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="only replace the shipped model's quality figures with those of --quality (same weights)",
    )
    parser.add_argument("--quality", help="benchmarks/results/quality.json with this model in it")
    parser.add_argument("--label", help="the model's label in that JSON [the name]")
    parser.add_argument("--recipe", help="the training config [configs/pretrained/<name>.yaml]")
    parser.add_argument(
        "--base",
        action="append",
        help="for a fine-tune: the run (or the checkpoint file) it started from (its steps come first); "
        "repeat, oldest first, for a chain of fine-tunes",
    )
    parser.add_argument("--base-recipe", action="append", help="that run's training config (one per --base)")
    parser.add_argument(
        "--data",
        default="simulated on the fly from the MNI152 template (mrirecon.data.realistic); nothing else",
        help="what it was trained on, in words",
    )
    parser.add_argument("--wall-hours", type=float, default=None, help="training wall time")
    parser.add_argument("--hardware", default="2-core x86-64 CPU", help="what it trained on")
    parser.add_argument("--output", help="where to write [mrirecon/models/weights/<name>.safetensors]")
    args = parser.parse_args()
    if args.refresh:
        refresh(args)
    elif args.run is None:
        parser.error("give the training run folder (or --refresh)")
    else:
        export(args)


if __name__ == "__main__":
    main()
