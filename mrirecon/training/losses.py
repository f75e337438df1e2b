"""Training losses: L1, L2, SSIM, weighted sums of them, and the multi-step losses of recurrent models.

Image losses compare magnitudes ``(B, h, w)`` in the normalised scale the network sees:

- ``l1``: mean absolute error; ``l2``: mean squared error;
- ``ssim``: ``1 − SSIM`` with fastMRI's formulation (7×7 uniform window, K1 = 0.01, K2 = 0.03,
  sample covariance), each sample's data range its volume maximum (``ReconSample.max_value``):
  :func:`mrirecon.evaluation.torch_metrics.ssim_torch`, which agrees with scikit-image;
- ``hfen_l1``, ``hfen_l2``, ``hfen_l1_norm``, ``hfen_l2_norm``: DIRECT's high-frequency error
  norms, the error after a Laplacian-of-Gaussian filter (:mod:`mrirecon.training.hfen`).

Recurrent models return ``steps[cascade][time_step]``. :func:`step_weights` gives the weights of
ATOMMIC's CIRIM (``logspace``: w_t = logspace(−1, 0, T), loss Σ_t w_t·L_t / T, the same over
cascades), of the RIM (``uniform``: the mean over time steps) or of RecurrentVarNet (``final``: the
last estimate only). :class:`ReconLoss` puts both together.

``dc`` is not an image loss: it is the relative data-consistency residual ``‖M F S x − y‖₂ / ‖y‖₂``
of each complex estimate against the measured k-space (:func:`consistency_loss`), the figure the
real-raw benchmark reports. The magnitude losses leave an estimate's phase and everything outside
the target's crop free; this term ties both to the measured samples.

``normalize="per_slice_max"`` reproduces ATOMMIC's loss inputs: after cropping, each estimate's
magnitude and the target are divided by their own maximum over the slice (:func:`per_slice_max`),
so that both peak at 1, and SSIM's data range is 1 (ATOMMIC: ``max(max t, max p)``, which is 1 after
the division). ATOMMIC takes the maximum over its whole batch; its configs train with batch 1,
where the two agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from mrirecon.evaluation.lesion import RingGeometry
from mrirecon.evaluation.torch_metrics import ssim_torch
from mrirecon.physics.operators import MultiCoilOperator
from mrirecon.shapes import center_crop, check_shape
from mrirecon.training.config import DATA_TERMS, LESION_TERMS, Normalization, Weighting
from mrirecon.training.hfen import HFEN_LOSSES

__all__ = [
    "ReconLoss",
    "Weighting",
    "consistency_loss",
    "crop_to_target",
    "image_loss",
    "l1_loss",
    "l2_loss",
    "lesion_contrast_loss",
    "lesion_l1_loss",
    "lesion_region",
    "lesion_ring_weights",
    "per_slice_max",
    "ssim_loss",
    "step_weights",
]


def crop_to_target(image: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre-crop an estimate ``(B, H, W)`` and a target ``(B, h, w)`` to their common size.

    The target is normally already at the reconstruction size (then only the estimate is cropped);
    where the estimate is smaller along an axis, the target is cropped too, as fastMRI does.
    """
    size = (min(image.shape[-2], target.shape[-2]), min(image.shape[-1], target.shape[-1]))
    return center_crop(image, size), center_crop(target, size)


def per_slice_max(image: torch.Tensor) -> torch.Tensor:
    """``image / max(image)`` per slice: ``(B, h, w)`` real magnitudes → the same, each peaking at 1.

    An all-zero slice stays zero (its maximum is taken as 1).
    """
    check_shape(image, "B h w", name="image")
    peak = image.amax(dim=(-2, -1), keepdim=True)
    return image / torch.where(peak > 0, peak, torch.ones_like(peak))


def l1_loss(
    pred: torch.Tensor, target: torch.Tensor, _data_range: torch.Tensor | float = 1.0
) -> torch.Tensor:
    """Mean absolute error over every pixel of the batch (the data range is not used)."""
    return (pred - target).abs().mean()


def l2_loss(
    pred: torch.Tensor, target: torch.Tensor, _data_range: torch.Tensor | float = 1.0
) -> torch.Tensor:
    """Mean squared error over every pixel of the batch (the data range is not used)."""
    return (pred - target).pow(2).mean()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, data_range: torch.Tensor | float) -> torch.Tensor:
    """``1 − mean SSIM`` of a batch, fastMRI's formulation (differentiable).

    Args:
        pred: ``(B, h, w)`` magnitudes.
        target: ``(B, h, w)`` reference magnitudes.
        data_range: A number or ``(B,)``: each sample's volume maximum.
    """
    return 1.0 - ssim_torch(pred, target, data_range).mean()


_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor | float], torch.Tensor]] = {
    "l1": l1_loss,
    "l2": l2_loss,
    "ssim": ssim_loss,
    **HFEN_LOSSES,
}


def lesion_l1_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    labels: torch.Tensor,
    margin: int = 3,
    region: torch.Tensor | None = None,
) -> torch.Tensor:
    """The relative L1 error around lesions: ``Σ|pred − target| / Σ target`` over the pixels within
    ``margin`` pixels of a labelled lesion (the lesion and the tissue it is measured against).

    Small lesions are a few pixels of a whole image: the image losses barely see them, and a
    network that smooths them away loses almost nothing. This term weights them on their own
    (0 for slices without lesions).

    Args:
        pred: ``(B, h, w)`` magnitudes.
        target: ``(B, h, w)``.
        labels: ``(B, h, w)`` lesion labels (0 = none), or empty: no lesions.
        margin: Dilation of the lesions, pixels.
        region: :func:`lesion_region` of ``labels`` and ``margin`` when already computed.
    """
    if labels.numel() == 0 or labels.shape != target.shape or not bool((labels > 0).any()):
        return pred.new_zeros(())
    if region is None:
        region = lesion_region(labels, margin)
    return (region * (pred - target).abs()).sum() / (region * target.abs()).sum().clamp_min(1e-12)


def lesion_region(labels: torch.Tensor, margin: int = 3) -> torch.Tensor:
    """``(B, h, w)`` float 0/1: the pixels within ``margin`` pixels (a square) of a labelled lesion."""
    region = (labels > 0).to(torch.float32).unsqueeze(1)
    return torch.nn.functional.max_pool2d(region, 2 * margin + 1, stride=1, padding=margin).squeeze(1)


def _dilate(masks: torch.Tensor, radius: float) -> torch.Tensor:
    """Pixels within Euclidean distance ``radius`` of a mask: ``(N, h, w)`` 0/1 → the same."""
    reach = int(radius)
    offsets = torch.arange(-reach, reach + 1, dtype=torch.float32, device=masks.device)
    disc = ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius**2).to(masks.dtype)
    hits = torch.nn.functional.conv2d(masks.unsqueeze(1), disc[None, None], padding=reach).squeeze(1)
    return (hits > 0.5).to(masks.dtype)


def lesion_ring_weights(
    target: torch.Tensor, labels: torch.Tensor, geometry: RingGeometry | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each lesion's pixels and its ring of normal tissue, as in :mod:`mrirecon.evaluation.lesion`.

    The ring is the metric's (:class:`~mrirecon.evaluation.lesion.RingGeometry`, its defaults
    unless given): pixels at distance ``(gap, gap + width]`` from the lesion, minus any lesion pixel
    or pixel within ``gap`` of one, minus air (reference below ``background_fraction`` of the
    slice's maximum). Measured per slice (the metric pools a lesion's slices).

    Args:
        target: ``(B, h, w)`` reference magnitudes.
        labels: ``(B, h, w)`` lesion labels, 0 = none.
        geometry: The ring's distances and air threshold.

    Returns:
        ``region`` and ``ring`` ``(B, K, h, w)`` 0/1 (K the largest label) and ``valid`` ``(B, K)``
        bool: the lesion is in that slice and its ring has at least ``geometry.min_pixels`` pixels.
    """
    geometry = geometry or RingGeometry()
    gap, width = geometry.gap, geometry.width
    count = int(labels.max())
    ids = torch.arange(1, count + 1, device=labels.device)
    region = (labels.unsqueeze(1) == ids[None, :, None, None]).to(target.dtype)
    b, k, h, w = region.shape
    flat = region.reshape(b * k, h, w)
    ring = _dilate(flat, gap + width) - _dilate(flat, gap)
    near_any = _dilate((labels > 0).to(target.dtype), gap)
    air_below = geometry.background_fraction * target.amax(dim=(-2, -1), keepdim=True)
    tissue = (target >= air_below).to(target.dtype)
    ring = ring.reshape(b, k, h, w) * ((1 - near_any) * tissue).unsqueeze(1)
    valid = (region.sum(dim=(-2, -1)) > 0) & (ring.sum(dim=(-2, -1)) >= geometry.min_pixels)
    return region, ring, valid


def lesion_contrast_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    floor: float = 0.05,
) -> torch.Tensor:
    """The mean relative error of the lesions' contrast, ``|C_pred − C_ref| / max(|C_ref|, floor)``.

    ``C = mean(lesion) / mean(ring) − 1`` (Weber contrast), the quantity whose ratio
    :func:`mrirecon.evaluation.lesion.measure_lesions` checks: the term is ``|P − 1|`` of that
    metric, averaged over the lesions of the batch (0 without lesions). ``lesion_l1`` weights the
    pixels around a lesion; this term weights what the reader sees, the lesion against its
    surroundings, whatever its size.

    Args:
        pred: ``(B, h, w)`` magnitudes.
        target: ``(B, h, w)``.
        weights: :func:`lesion_ring_weights` of the target and its labels.
        floor: Smallest contrast divided by (a faint lesion does not dominate the mean).
    """
    region, ring, valid = weights
    if not bool(valid.any()):
        return pred.new_zeros(())

    def contrast(image: torch.Tensor) -> torch.Tensor:
        inside = (region * image.unsqueeze(1)).sum(dim=(-2, -1)) / region.sum(dim=(-2, -1)).clamp_min(1)
        around = (ring * image.unsqueeze(1)).sum(dim=(-2, -1)) / ring.sum(dim=(-2, -1)).clamp_min(1)
        return inside / around.clamp_min(1e-12) - 1

    reference = contrast(target)[valid]
    error = (contrast(pred)[valid] - reference).abs() / reference.abs().clamp_min(floor)
    return error.mean()


def consistency_loss(
    image: torch.Tensor, operator: MultiCoilOperator, measured: torch.Tensor
) -> torch.Tensor:
    """The mean over the batch of the relative residual ``‖M F S x − y‖₂ / ‖y‖₂``.

    Args:
        image: ``(B, H, W)`` complex estimate at the k-space's size.
        operator: ``A = M F S`` of the batch (its coil maps and mask).
        measured: ``(B, C, H, W)`` complex measured k-space ``y`` (zeros where not sampled).

    Returns:
        A 0-d tensor; 0 for an estimate that reproduces every sample.
    """
    if not image.is_complex():
        raise ValueError("the 'dc' loss needs complex estimates; this model returns real images")
    residual = _l2_norms(operator.forward(image) - measured)
    return (residual / _l2_norms(measured).clamp_min(1e-12)).mean()


def _l2_norms(x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` Euclidean norms of the ``B`` complex items of ``x``, through its real view.

    ``torch.linalg.vector_norm`` of a complex CPU tensor takes a slow path: 9 ms for 16 coils of
    256 × 256 against 0.3 ms for the same norm of the real view (2 threads).
    """
    return torch.linalg.vector_norm(torch.view_as_real(x).flatten(1), dim=1)


def image_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: torch.Tensor | float,
    terms: Mapping[str, float],
) -> torch.Tensor:
    """The weighted sum ``Σ_k weight_k · loss_k(pred, target)`` of named image losses.

    Args:
        pred: ``(B, h, w)`` real magnitudes (the same size as the target).
        target: ``(B, h, w)``.
        data_range: A number or ``(B,)``, for SSIM.
        terms: Loss name (``l1``, ``l2``, ``ssim``, the ``hfen_*`` norms) → weight.

    Returns:
        A 0-d tensor.
    """
    dims = check_shape(target, "B h w", name="target")
    check_shape(pred, "B h w", name="pred", dims=dims)
    total = pred.new_zeros(())
    for name, weight in terms.items():
        if name not in _LOSSES:
            raise ValueError(f"unknown loss {name!r}; known: {', '.join(_LOSSES)}")
        if weight:
            total = total + weight * _LOSSES[name](pred, target, data_range)
    return total


def step_weights(count: int, weighting: Weighting) -> list[float]:
    """Weights of ``count`` steps (time steps of a cascade, or cascades).

    - ``logspace``: ``logspace(−1, 0, count) / count`` (ATOMMIC's CIRIM: for 8 steps
      [0.1, 0.139, …, 1.0] / 8; the last step dominates);
    - ``uniform``: ``1 / count`` each (the RIM: the mean over steps);
    - ``final``: 1 for the last step, 0 for the others (RecurrentVarNet).

    A single step always has weight 1 (``logspace(−1, 0, 1)`` would be 0.1: ATOMMIC scales the loss
    of its one-cascade RIM by 0.1, which only rescales the learning rate; we do not).
    """
    if count < 1:
        raise ValueError(f"need at least one step, got {count}")
    if weighting == "final" or count == 1:
        return [0.0] * (count - 1) + [1.0]
    if weighting == "uniform":
        return [1.0 / count] * count
    if weighting == "logspace":
        return [float(w) / count for w in torch.logspace(-1, 0, count, dtype=torch.float64)]
    raise ValueError(f"unknown weighting {weighting!r}; known: logspace, uniform, final")


class ReconLoss:
    """The training loss of a (possibly recurrent) reconstructor.

    ``loss(steps, target, data_range) = Σ_c v_c Σ_t w_t · image_loss(|steps[c][t]|, target)`` with
    ``w = step_weights(T, time_weighting)`` and ``v = step_weights(N, cascade_weighting)``; each
    estimate is centre-cropped to the target first. A ``dc`` weight adds ``dc · consistency_loss``
    of each (uncropped) estimate to its image loss, with the same step weights.

    Args:
        terms: Loss name → weight (see :func:`image_loss`).
        time_weighting: Weights over the time steps of each cascade.
        cascade_weighting: Weights over cascades.
        normalize: ``"none"`` or ``"per_slice_max"`` (ATOMMIC's: estimate and target each divided
            by their own slice maximum, SSIM with data range 1; see the module docstring).
    """

    def __init__(
        self,
        terms: Mapping[str, float],
        time_weighting: Weighting = "final",
        cascade_weighting: Weighting = "final",
        normalize: Normalization = "none",
    ):
        if normalize not in ("none", "per_slice_max"):
            raise ValueError(f"unknown normalize {normalize!r}; known: none, per_slice_max")
        for name in terms:
            if name not in _LOSSES and name not in LESION_TERMS and name not in DATA_TERMS:
                known = ", ".join([*_LOSSES, *LESION_TERMS, *DATA_TERMS])
                raise ValueError(f"unknown loss {name!r}; known: {known}")
        step_weights(1, time_weighting)
        step_weights(1, cascade_weighting)
        self.terms = {k: v for k, v in terms.items() if k in _LOSSES}
        self.lesion_l1_weight = float(terms.get("lesion_l1", 0.0))
        self.lesion_contrast_weight = float(terms.get("lesion_contrast", 0.0))
        self.dc_weight = float(terms.get("dc", 0.0))
        self.time_weighting: Weighting = time_weighting
        self.cascade_weighting: Weighting = cascade_weighting
        self.normalize: Normalization = normalize

    @property
    def lesion_weight(self) -> float:
        """The summed weight of the terms that need lesion labels (0: the labels are not needed)."""
        return self.lesion_l1_weight + self.lesion_contrast_weight

    def image(
        self,
        image: torch.Tensor,
        target: torch.Tensor,
        data_range: torch.Tensor | float,
        labels: torch.Tensor | None = None,
        rings: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
        region: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss of one estimate: ``image`` ``(B, H, W)`` complex or real, ``target`` ``(B, h, w)``,
        ``labels`` ``(B, h, w)`` lesion labels (for the lesion terms) or None; ``rings`` the
        :func:`lesion_ring_weights` of target and labels and ``region`` their
        :func:`lesion_region`, when already computed (once for all the estimates of a batch)."""
        magnitude = image.abs() if image.is_complex() else image
        pred, ref = crop_to_target(magnitude.float(), target.float())
        if self.normalize == "per_slice_max":
            pred, ref, data_range = per_slice_max(pred), per_slice_max(ref), 1.0
        loss = image_loss(pred, ref, data_range, self.terms)
        if labels is None or labels.numel() == 0 or labels.shape[0] != ref.shape[0]:
            return loss
        if labels.shape[-2] < ref.shape[-2] or labels.shape[-1] < ref.shape[-1]:
            return loss  # labels of another grid than the target's
        if labels.shape != ref.shape:  # an estimate smaller than the target cropped it: crop the labels too
            labels = center_crop(labels, (ref.shape[-2], ref.shape[-1]))
            rings = region = None  # those of the uncropped target do not fit
        if self.lesion_l1_weight:
            loss = loss + self.lesion_l1_weight * lesion_l1_loss(pred, ref, labels, region=region)
        if self.lesion_contrast_weight and bool((labels > 0).any()):
            weights = rings if rings is not None else lesion_ring_weights(ref, labels)
            loss = loss + self.lesion_contrast_weight * lesion_contrast_loss(pred, ref, weights)
        return loss

    def __call__(
        self,
        steps: Sequence[Sequence[torch.Tensor]],
        target: torch.Tensor,
        data_range: torch.Tensor | float,
        labels: torch.Tensor | None = None,
        data: tuple[MultiCoilOperator, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The weighted multi-step loss.

        Args:
            steps: ``steps[cascade][time_step]``, each ``(B, H, W)`` (``ReconOutput.steps``).
            target: ``(B, h, w)`` real reference.
            data_range: A number or ``(B,)`` (the volume maxima, for SSIM).
            labels: ``(B, h, w)`` lesion labels for the lesion terms, or None.
            data: The forward operator and the measured ``(B, C, H, W)`` k-space, for the ``dc``
                term (required when its weight is not 0).

        Returns:
            A 0-d tensor.
        """
        if not steps or any(len(cascade) == 0 for cascade in steps):
            raise ValueError("the model returned no estimates (empty steps)")
        if self.dc_weight and data is None:
            raise ValueError("the 'dc' loss needs the operator and the measured k-space (data=...)")
        rings = region = None
        if labels is not None and labels.shape == target.shape and bool((labels > 0).any()):
            if self.lesion_contrast_weight:
                rings = lesion_ring_weights(target.float(), labels)
            if self.lesion_l1_weight:
                region = lesion_region(labels)
        total = target.new_zeros((), dtype=torch.float32)
        cascade_w = step_weights(len(steps), self.cascade_weighting)
        for v, cascade in zip(cascade_w, steps):
            if v == 0:
                continue
            for w, estimate in zip(step_weights(len(cascade), self.time_weighting), cascade):
                if w != 0:
                    loss = self.image(estimate, target, data_range, labels, rings, region)
                    if self.dc_weight and data is not None:
                        loss = loss + self.dc_weight * consistency_loss(estimate, *data)
                    total = total + (v * w) * loss
        return total
