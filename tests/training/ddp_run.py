"""Two-process DDP training on the CPU (gloo), started by test_ddp.py.

Lightning's DDP launcher starts rank 1 by running this script again, so everything here must be
deterministic: the tiny model is registered and the same in-memory data are built in every process.
Rank 0 writes ``result.json`` with the logged validation means and the per-volume scores.

Usage: python tests/training/ddp_run.py OUTPUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from mrirecon.training.config import train_config_from_mapping
from mrirecon.training.run import train
from tests.training.conftest import base_mapping
from tests.training.phantoms import PhantomSlices
from tests.training.tiny import register_tiny


def main(output: Path) -> None:
    register_tiny()
    torch.set_num_threads(1)
    mapping = base_mapping(max_epochs=1, strategy="ddp", devices=2, threads=1)
    mapping["data"]["val_batch_size"] = 2
    datasets = {
        "train": PhantomSlices(volumes=2, slices=2, train=True, seed=1, prefix="train"),
        # 3 volumes × 3 slices: 9 slices over 2 ranks with batches of 2 (uneven shards)
        "val": PhantomSlices(volumes=3, slices=3, train=False, seed=2, prefix="val"),
    }
    result = train(train_config_from_mapping(mapping), output_dir=output, datasets=datasets, echo=print)
    if result.is_global_zero:
        import torch.distributed as dist

        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        (output / "result.json").write_text(
            json.dumps({"world_size": world, "val_metrics": result.val_metrics})
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
