"""Evaluation layer: fastMRI-exact metrics, lesion-contrast checks and reports.

- :mod:`~mrirecon.evaluation.metrics`: NumPy SSIM/PSNR/NMSE as fastMRI's ``evaluate.py`` (the reference),
  and the separately named Calgary-Campinas convention;
- :mod:`~mrirecon.evaluation.torch_metrics`: batched, differentiable torch versions (validation, SSIM loss);
- :mod:`~mrirecon.evaluation.aggregate`: mean ± 2·SD over volumes per model, acquisition, acceleration;
- :mod:`~mrirecon.evaluation.lesion` (with :mod:`~mrirecon.evaluation.lesion_insertion`): lesions put into
  fully sampled k-space, and their contrast, CNR and preservation in reconstructions;
- :mod:`~mrirecon.evaluation.annotations`: fastMRI+ boxes (with the up-down flip);
- :mod:`~mrirecon.evaluation.evaluate`: ``mrirecon evaluate`` (reading in
  :mod:`~mrirecon.evaluation.volumes`, pictures in :mod:`~mrirecon.evaluation.figures` and
  :mod:`~mrirecon.evaluation.panels`, the HTML in :mod:`~mrirecon.evaluation.report`).

See docs/evaluation.md.
"""
