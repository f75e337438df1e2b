"""Write docs/pretrained.md from the cards inside the shipped weights (one source for the figures).

    python -m benchmarks.model_cards            # rewrites docs/pretrained.md

Each shipped ``mrirecon/models/weights/<name>.safetensors`` carries its card in its header (written
by ``benchmarks.pretrained``): recipe, steps, hardware, the quality benchmark's figures. This script
renders them, with the page's fixed introduction, so the page never disagrees with the files.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mrirecon.models.pretrained import PRETRAINED, read_safetensors_model

DOC = Path(__file__).resolve().parents[1] / "docs" / "pretrained.md"

INTRO = """# Pretrained models

mrirecon ships trained weights inside the package: no download, no account. A name works wherever a
checkpoint path does:

```bash
mrirecon models                                   # the names, with their headline figures
mrirecon infer cirim-brain scan.h5 -o out/        # reconstruct a fastMRI / ISMRMRD / BART / NumPy file
mrirecon batch --checkpoint cirim-brain --input-dir scans/ -o out/
mrirecon train -c my.yaml model.init=cirim-brain  # fine-tune on your own data
```

The files are safetensors (tensors and a JSON header; nothing is unpickled when they are read), each
with the card below in its header. All of them together take {total_mb:.1f} MB.

**For research use only, not for diagnosis.** The models never saw a real scan in training: they
learned from slices mrirecon simulates from real brain anatomy (the MNI152 template shipped with
nilearn; random contrast, orientation, deformation, texture, bias field, 4-16 coils of birdcage and
surface arrays, correlated noise, hypo- and hyperintense lesions; see docs/data.md);
`cirim-brain` learned first from mrirecon's procedural brain phantom (`mrirecon simulate`). Quality on
real anatomy is measured below on scans the models never saw, against compressed sensing tuned on
a separate validation set.

The models learned from ACS coil maps (`coil_maps: acs` in their recipes), and inference gives them
ACS maps by default; `--coil-maps espirit` is refused for them (ESPIRiT's maps, zero outside the
object and with another phase reference, are inputs they never saw).

How to read the tables: *real* is the real-anatomy set of `benchmarks/quality.py` (dipy's real
single-subject T1 slice in eight acquisitions with inserted lesions, and six real b0 slices; coils
and noise simulated; anatomy from another source than the training template); *simulated* is a
held-out set of the simulator (192-256 rows, 8-16 coils, 3-6 lesions per slice, seeds training never
uses). Head PSNR/SSIM are computed inside the head mask, so removing background noise earns nothing.
A lesion is *kept* when its contrast to the tissue around it is within 10 % of the reference's and
its CNR is at least 1 (`mrirecon.evaluation.lesion`); the counts are of the lesions the reference
shows (CNR at least 1 there): 51 of the simulated set's 54 and 32 of the real set's 33, the others
being fainter than the tissue texture around them even in the reference. CS is L1-wavelet
compressed sensing with its λ and coil maps tuned per mask on a separate validation set. Seconds
per slice are the quality
benchmark's, with one thread: a guide only (CS took 2-10 s per slice there); speed is measured
in docs/benchmarks.md.

On real prospectively undersampled scans (no reference to score against) the models' images and
their data-consistency residuals beside CS are in docs/benchmarks.md, "Real raw scans".

`recurrentvarnet-brain` is a small RecurrentVarNet trained for 1,000 steps only (under an hour on
one CPU thread) and the weakest of the three: on the real-anatomy set it beats CS in head SSIM on
every mask but in head PSNR only on three (CS is 0.2-0.3 dB better at equispaced 4× and Poisson
8×), on the simulated set CS is better at 4× and Poisson 8×, and it keeps no lesion at line masks
on real anatomy; prefer `cirim-brain`.

Regenerate this page with `python -m benchmarks.model_cards` after exporting weights with
`python -m benchmarks.pretrained`.
"""


def _stages(card: dict[str, Any]) -> str:
    training = card.get("training", {})
    stages = training.get("stages") or [
        {"recipe": card.get("recipe", "?"), "optimizer_steps": training.get("optimizer_steps")}
    ]
    return "; then ".join(f"`{s['recipe']}` for {s['optimizer_steps']} steps" for s in stages)


def _table(quality: dict[str, Any], set_name: str) -> list[str]:
    rows = quality.get(set_name, {})
    if not rows:
        return [f"(no {set_name}-set figures in this card)"]
    lines = [
        "| mask | head PSNR (dB) | CS | head SSIM | CS | lesions kept | s / slice |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mask, f in rows.items():
        lines.append(
            f"| {mask} | {f['head_psnr']:.2f} | {f['cs_head_psnr']:.2f} | {f['head_ssim']:.4f} | "
            f"{f['cs_head_ssim']:.4f} | {f['lesions_kept']} | {f['seconds_per_slice']:.2f} |"
        )
    return lines


def _limits(quality: dict[str, Any]) -> list[str]:
    """The masks of the real set where CS is better, and lesion keeping, stated from the figures."""
    out = []
    for set_name in ("real", "simulated"):
        for mask, f in quality.get(set_name, {}).items():
            behind = []
            if f["head_psnr"] < f["cs_head_psnr"]:
                behind.append(f"PSNR by {f['cs_head_psnr'] - f['head_psnr']:.2f} dB")
            if f["head_ssim"] < f["cs_head_ssim"]:
                behind.append(f"SSIM by {f['cs_head_ssim'] - f['head_ssim']:.4f}")
            if behind:
                out.append(f"- {set_name} set, {mask}: CS is better in {' and '.join(behind)}.")
    for set_name in ("real", "simulated"):
        faded = []
        for mask, f in quality.get(set_name, {}).items():
            kept, total = (int(x) for x in f["lesions_kept"].split("/"))
            if total and kept < 0.9 * total:
                faded.append(f"{mask} {kept}/{total}")
        if faded:
            out.append(
                f"- Small lesions lose contrast: on the {set_name} set fewer than 90 % keep it "
                f"({', '.join(faded)}). Check lesions against a classical reconstruction."
            )
    return out


def card_markdown(name: str, card: dict[str, Any], size_mb: float) -> str:
    training = card.get("training", {})
    quality = card.get("quality", {})
    lines = [
        f"## `{name}`",
        "",
        f"{PRETRAINED[name].summary}.",
        "",
        f"- Model: `{card.get('model')}`, {card.get('parameters', 0):,} parameters, {size_mb:.2f} MB.",
        f"- Training data: {training.get('data', '?')}.",
        f"- Recipe: {_stages(card)} ({training.get('optimizer_steps')} optimiser steps in all, batch 1).",
        f"- Hardware: {training.get('hardware', '?')}, {training.get('wall_hours', '?')} h of training "
        f"wall time; torch {training.get('torch', '?')}.",
    ]
    if card.get("note"):
        lines.append(f"- {card['note']}")
    lines += ["", "Real anatomy (`benchmarks/quality.py`, real set):", "", *_table(quality, "real"), ""]
    lines += ["Held-out simulated set:", "", *_table(quality, "simulated"), ""]
    limits = _limits(quality)
    lines += ["Known limits:", ""]
    if not quality:
        limits = ["- Its quality has not been measured."]
    lines += limits or ["- None of the measured masks favours CS."]
    lines += [
        "- Trained on simulated brain slices only: other anatomy (knee, body), non-Cartesian sampling "
        "and 3-D acquisitions are outside what it learned.",
        "",
        f"*{card.get('use', 'For research use only, not for diagnosis.')}*",
        "",
    ]
    return "\n".join(lines)


def render() -> str:
    total_mb = sum(entry.path.stat().st_size for entry in PRETRAINED.values() if entry.path.is_file()) / 1e6
    parts = [INTRO.replace("{total_mb:.1f}", f"{total_mb:.1f}")]
    for name, entry in PRETRAINED.items():
        if not entry.path.is_file():
            parts.append(f"## `{name}`\n\nNot shipped in this version.\n")
            continue
        _, _, card = read_safetensors_model(entry.path)
        parts.append(card_markdown(name, card, entry.path.stat().st_size / 1e6))
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(DOC), help="where to write [docs/pretrained.md]")
    args = parser.parse_args()
    Path(args.output).write_text(render())
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
