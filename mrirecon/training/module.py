"""The LightningModule: a thin shell around a registered :class:`~mrirecon.models.base.Reconstructor`.

- training: the multi-step loss of :class:`~mrirecon.training.losses.ReconLoss` on the normalised
  images the network sees;
- validation and test: every slice leaves a :class:`~mrirecon.training.scoring.SliceScore` (in the
  input's intensity scale); at the end of the epoch the scores of all ranks are gathered and every
  volume is scored once, as fastMRI's evaluate.py does (``val_ssim``, ``val_psnr``, ``val_nmse``,
  ``val_loss``), next to the zero-filled reconstruction's scores (``val_ssim_zero_filled``, ...);
- predict: magnitudes in the input's scale, cropped to the reconstruction size;
- checkpoints carry the ``"mrirecon"`` key of docs/interfaces.md §4 (model name and config,
  mrirecon version, data manifest checksum, the resolved training config), plain data only.

Batches are collated :class:`~mrirecon.data.sample.ReconSample` tuples: tensors gain the batch
axis, number fields (``max_value``, ``scale``, ``slice_num``) are ``(B,)`` tensors, ``fname`` a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch

from mrirecon.data.sample import ReconSample
from mrirecon.errors import CheckpointError, ConfigError
from mrirecon.models.base import ReconOutput
from mrirecon.models.checkpoints import CHECKPOINT_KEY
from mrirecon.models.io import model_payload
from mrirecon.models.registry import build_model
from mrirecon.physics import MultiCoilOperator, ifftnc, rss, sampled_in_convention
from mrirecon.training.config import LossSection, OptimSection
from mrirecon.training.losses import ReconLoss, crop_to_target
from mrirecon.training.schedule import build_optimizer, build_scheduler
from mrirecon.training.scoring import (
    SliceScore,
    VolumeScore,
    gather_scores,
    mean_scores,
    slice_scores,
    volume_scores,
)

__all__ = ["ReconModule"]


def _floats(values: Any, like: torch.Tensor) -> torch.Tensor:
    """A collated number field of a batch (a ``(B,)`` tensor) as float32 on ``like``'s device."""
    return torch.as_tensor(values, dtype=torch.float32, device=like.device).reshape(-1)


def _ints(values: Any) -> list[int]:
    """A collated integer field of a batch as a list."""
    return [int(v) for v in torch.as_tensor(values).reshape(-1).tolist()]


class ReconModule(pl.LightningModule):
    """Train, validate, test and predict with one registered reconstructor.

    Args:
        model_name: The registry name.
        model_config: The model's config dataclass.
        loss: Loss terms and step weighting.
        optim: Optimiser and schedule.
        centered: FFT convention of the data (for the zero-filled reference scores).
        gradient_checkpointing: Turn on the model's gradient checkpointing.
        record: Extra plain-data entries for the checkpoint's ``"mrirecon"`` key
            (``manifest_sha256``, ``training_config``).
    """

    def __init__(
        self,
        model_name: str,
        model_config: Any,
        *,
        loss: LossSection | None = None,
        optim: OptimSection | None = None,
        centered: bool = True,
        gradient_checkpointing: bool = False,
        record: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.model_name = model_name
        self.model_config = model_config
        self.model = build_model(model_name, model_config)
        self.model.set_gradient_checkpointing(gradient_checkpointing)
        loss = loss or LossSection()
        self.criterion = ReconLoss(loss.terms, loss.time_weighting, loss.cascade_weighting, loss.normalize)
        self.optim = optim or OptimSection()
        self.centered = centered
        #: The loss, files and slice numbers of the batches accumulated into the coming optimiser
        #: step (named when the run diverges).
        self._group: list[tuple[torch.Tensor, list[str], list[int]]] = []
        self.record = dict(record or {})
        #: Optimiser steps of the whole run (the cosine schedule's length); None: ask Lightning.
        self.total_steps: int | None = None
        #: This process's global rank while it was fitting (None before ``fit``).
        self.fit_global_rank: int | None = None
        self._scores: dict[str, list[SliceScore]] = {}
        #: Per-volume scores of the last validation / test epoch, by stage (``val``, ``test``),
        #: for the model and for the zero-filled reference (``val_zero_filled``...).
        self.volume_results: dict[str, list[VolumeScore]] = {}

    def on_fit_start(self) -> None:
        self.fit_global_rank = int(self.global_rank)

    # ------------------------------------------------------------------ forward and loss
    def forward(self, batch: ReconSample) -> ReconOutput:
        """Run the model on a collated batch, handed over in the model's FFT convention (a model
        without the setting, such as the U-Net, is centred; the image is the same)."""
        to_centered = self.model.fft_centered
        kspace, mask = sampled_in_convention(
            batch.masked_kspace, batch.mask.float(), centered=self.centered, to_centered=to_centered
        )
        return self.model(kspace, mask, batch.coil_maps)

    def _loss(self, output: ReconOutput, batch: ReconSample) -> torch.Tensor:
        # losses (SSIM's variances in particular) in float32, outside any autocast region
        with torch.autocast(self.device.type, enabled=False):
            labels = self._labels(batch)
            return self.criterion(
                output.steps,
                batch.target.float(),
                _floats(batch.max_value, batch.target),
                labels,
                self._measured(batch, slice(None)),
            )

    def _labels(self, batch: ReconSample) -> torch.Tensor | None:
        """The batch's ``(B, h, w)`` lesion labels when a loss term needs them, else None."""
        return batch.lesion_labels if self.criterion.lesion_weight else None

    def _measured(self, batch: ReconSample, rows: slice) -> tuple[MultiCoilOperator, torch.Tensor] | None:
        """The forward operator and measured k-space of ``batch[rows]`` for the ``dc`` loss, or None."""
        if not self.criterion.dc_weight:
            return None
        operator = MultiCoilOperator(batch.coil_maps[rows], batch.mask[rows], centered=self.centered)
        return operator, batch.masked_kspace[rows]

    def training_step(self, batch: ReconSample, batch_idx: int) -> torch.Tensor:
        output = self(batch)
        loss = self._loss(output, batch)
        size = batch.target.shape[0]
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=size)
        self.log("train_loss_epoch", loss, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        self._group.append((loss.detach(), list(batch.fname), _ints(batch.slice_num)))
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Stop a diverged run before its NaN or Inf gradients reach the weights (every later step,
        checkpoint and validation score would be NaN). The values are tested, not a norm (large
        finite gradients that clipping, applied after this hook, would tame are no divergence).
        In a run of several processes the gradients are already averaged here, so every process
        stops at the same step. Under ``16-mixed`` the gradient scaler skips such steps itself."""
        group, self._group = self._group, []  # the batches accumulated into this step
        if str(self.trainer.precision).startswith("16"):
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads or bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
            return
        bad = [item for item in group if not bool(torch.isfinite(item[0]))] or group
        slices_of = [", ".join(f"{n} slice {s}" for n, s in zip(names, numbers)) for _, names, numbers in bad]
        where = "; ".join(f"{text} (loss {float(item[0]):.4g})" for text, item in zip(slices_of, bad[:3]))
        unclipped = self.optim.gradient_clip_val is None
        clip = " or set optim.gradient_clip_val (e.g. 1.0)" if unclipped else ""
        raise ConfigError(
            f"the training diverged at step {self.global_step}: the gradients hold NaN or Inf values "
            f"(the batch{'es' if len(bad) > 1 else ''}: {where or 'unknown'})",
            hint=f"lower optim.lr (now {self.optim.lr:g}){clip}, and train again",
        )

    # ------------------------------------------------------------------ evaluation
    def _per_slice_loss(self, output: ReconOutput, batch: ReconSample) -> torch.Tensor:
        losses = []
        max_value = _floats(batch.max_value, batch.target)
        labels = self._labels(batch)
        with torch.autocast(self.device.type, enabled=False):
            for i in range(batch.target.shape[0]):
                steps = [[step[i : i + 1] for step in cascade] for cascade in output.steps]
                rows = slice(i, i + 1)
                measured = self._measured(batch, rows)
                target = batch.target[rows].float()
                row_labels = None if labels is None else labels[rows]
                losses.append(self.criterion(steps, target, max_value[rows], row_labels, data=measured))
        return torch.stack(losses)

    def _score(self, stage: str, batch: ReconSample) -> None:
        output = self(batch)
        scale = _floats(batch.scale, batch.target).view(-1, 1, 1)
        data_range = _floats(batch.max_value, batch.target) * scale.view(-1)
        names = list(batch.fname)
        slices = _ints(batch.slice_num)
        pred, target = crop_to_target(output.image.abs().float(), batch.target.float())
        self._scores.setdefault(stage, []).extend(
            slice_scores(
                pred * scale, target * scale, data_range, names, slices, self._per_slice_loss(output, batch)
            )
        )
        zero_filled = rss(ifftnc(batch.masked_kspace, centered=self.centered))
        zf, target = crop_to_target(zero_filled.float(), batch.target.float())
        self._scores.setdefault(f"{stage}_zero_filled", []).extend(
            slice_scores(zf * scale, target * scale, data_range, names, slices)
        )

    def _finish(self, stage: str) -> None:
        for key in (stage, f"{stage}_zero_filled"):
            volumes = volume_scores(gather_scores(self._scores.pop(key, [])))
            self.volume_results[key] = volumes
            means = mean_scores(volumes)
            suffix = "_zero_filled" if key.endswith("_zero_filled") else ""
            names = ("ssim", "psnr", "nmse", "loss") if not suffix else ("ssim", "psnr", "nmse")
            # every rank gathered the same scores, so every rank logs the same numbers: no sync needed
            for name in names:  # NaN too: the checkpoint callback takes it as the worst score
                self.log(f"{stage}_{name}{suffix}", means[name], prog_bar=(name == "ssim" and not suffix))

    def on_validation_epoch_start(self) -> None:
        self._scores.pop("val", None)
        self._scores.pop("val_zero_filled", None)

    def validation_step(self, batch: ReconSample, batch_idx: int) -> None:
        self._score("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_start(self) -> None:
        self._scores.pop("test", None)
        self._scores.pop("test_zero_filled", None)

    def test_step(self, batch: ReconSample, batch_idx: int) -> None:
        self._score("test", batch)

    def on_test_epoch_end(self) -> None:
        self._finish("test")

    def predict_step(self, batch: ReconSample, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Magnitudes ``(B, h, w)`` float32 on the CPU in the input's scale, with file names and slices."""
        output = self(batch)
        scale = _floats(batch.scale, batch.target).view(-1, 1, 1)
        pred, _ = crop_to_target(output.image.abs().float(), batch.target)
        return {
            "fname": list(batch.fname),
            "slice_num": _ints(batch.slice_num),
            "reconstruction": (pred * scale).cpu(),
        }

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.model.parameters(), self.optim)
        total = self.total_steps or 1
        if self.optim.scheduler == "cosine" and self.total_steps is None:
            # Lightning counts by building the training iterator here, before a resumed run has
            # restored its epoch; mrirecon's train() sets total_steps instead (exact resume)
            total = int(self.trainer.estimated_stepping_batches)
        scheduler = build_scheduler(optimizer, self.optim, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_record(self) -> dict[str, Any]:
        """The checkpoint's ``"mrirecon"`` entry: the model payload without weights, plus the record."""
        return {**model_payload(self.model_name, self.model_config), **self.record}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.checkpoint_record()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(CHECKPOINT_KEY) or {}
        name = saved.get("model_name")
        if name is not None and name != self.model_name:
            raise CheckpointError(
                f"the checkpoint holds model '{name}', but this run trains '{self.model_name}'",
                hint="resume with the config the run was started with",
            )
