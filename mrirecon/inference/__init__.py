"""inference layer: reconstruct files, folders and manifests with a checkpoint or a classical baseline.

- :func:`~mrirecon.inference.loading.load_reconstructor`: a checkpoint or a registry name → model;
- :func:`~mrirecon.inference.batch.run_batch`: resumable batch reconstruction (``mrirecon batch``),
  DDP across devices and nodes, ``failures.csv`` and ``run.json``;
- :func:`~mrirecon.inference.batch.run_inference`: the same for ``mrirecon infer`` (every input
  redone, any failure raised);
- :class:`~mrirecon.inference.options.RunOptions`, :class:`~mrirecon.inference.undersampling.Undersampling`.

docs/inference.md describes the outputs, resuming and the order in which they are written.
"""

from mrirecon.inference.batch import RunResult, run_batch, run_inference
from mrirecon.inference.loading import LoadedModel, load_reconstructor
from mrirecon.inference.options import RunOptions
from mrirecon.inference.undersampling import Undersampling

__all__ = [
    "LoadedModel",
    "RunOptions",
    "RunResult",
    "Undersampling",
    "load_reconstructor",
    "run_batch",
    "run_inference",
]
