"""The error types: one line with path and hint, also when a DataLoader worker raised them."""

from __future__ import annotations

import pytest
from torch.utils.data import DataLoader, Dataset

from mrirecon.errors import ConfigError, DataError


class _Bad(Dataset[int]):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> int:
        raise DataError(
            "slice 1 of the k-space holds NaN or Inf values", path="train/v002.h5", hint="re-export it"
        )


def test_an_error_raised_in_a_dataloader_worker_keeps_its_one_line() -> None:
    """PyTorch raises a worker's error again as ``DataError(<the worker's traceback>)``: the CLI
    printed a 2,000-character "one line" holding the traceback, without the path or hint in
    their place."""
    with pytest.raises(DataError) as caught:
        next(iter(DataLoader(_Bad(), num_workers=1, collate_fn=lambda items: items)))
    expected = "train/v002.h5: slice 1 of the k-space holds NaN or Inf values (re-export it)"
    assert caught.value.one_line() == expected
    assert "Traceback" not in str(caught.value)


def test_other_messages_are_kept_as_given() -> None:
    text = "Caught nothing; no Original Traceback here: a message of the user's own"
    assert ConfigError(text).message == text
    report = "Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call):\n"
    assert DataError(report + "ValueError: not ours").message == "not ours"
    assert DataError(report + "no error line").message.startswith("Caught ValueError")
