"""Training layer: PyTorch Lightning around the registered reconstructors.

- :mod:`~mrirecon.training.config`: the training config (YAML → frozen dataclasses, checked first);
- :mod:`~mrirecon.training.losses`: L1, L2, fastMRI's SSIM loss, weighted sums, multi-step weighting;
- :mod:`~mrirecon.training.scoring`: per-volume validation scores gathered across ranks;
- :mod:`~mrirecon.training.schedule`: Adam/AdamW and the warm-up, step and cosine schedules;
- :mod:`~mrirecon.training.samplers`: seeded data order and training masks (exact resume), and
  evaluation shards without repeats;
- :mod:`~mrirecon.training.module`, :mod:`~mrirecon.training.datamodule`: the LightningModule and
  LightningDataModule; :mod:`~mrirecon.training.sources`: datasets from folders and manifests;
- :mod:`~mrirecon.training.run`: ``mrirecon train`` (:func:`~mrirecon.training.run.train`).

Checkpoints are read back by :mod:`mrirecon.models.checkpoints` (no Lightning import, nothing
unpickled), which inference uses too.

Importing this package imports nothing heavy; import the submodules you need. See docs/training.md.
"""
