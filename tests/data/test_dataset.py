"""SliceDataset: sources (folder, manifest, file, list), laziness, the (file, slice) index, and
DataLoader workers (each opens its own files; mask seeds per worker)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from mrirecon.data.dataset import SliceDataset, collate_samples, seed_mask_worker
from mrirecon.data.manifest import ManifestEntry, read_manifest, write_manifest
from mrirecon.data.transforms import ReconTransform
from mrirecon.errors import DataError
from mrirecon.masks import create_mask_func
from tests.data.helpers import multicoil_kspace


def test_sources_and_index(sim_dataset: list[Path], tmp_path: Path) -> None:
    folder = sim_dataset[0].parent
    by_folder = SliceDataset(folder)
    assert len(by_folder) == 9 and by_folder.files == sim_dataset
    assert by_folder.index[:4] == [
        (sim_dataset[0], 0),
        (sim_dataset[0], 1),
        (sim_dataset[0], 2),
        (sim_dataset[1], 0),
    ]
    assert by_folder.slices_of(sim_dataset[1]) == [3, 4, 5]
    kspace, path, index = by_folder[4]
    assert kspace.shape == (4, 64, 64) and path == str(sim_dataset[1]) and index == 1
    assert len(SliceDataset(sim_dataset[2])) == 3
    assert SliceDataset([sim_dataset[2], sim_dataset[0]]).files == [sim_dataset[2], sim_dataset[0]]
    manifest = folder / "manifest.csv"
    splits = {e.path: e.split for e in read_manifest(manifest)}
    for split in ("train", "val", "test"):
        subset = SliceDataset(manifest, split=split)
        assert [p.resolve() for p in subset.files] == [p for p, s in splits.items() if s == split]
    with pytest.raises(DataError, match="a split needs a manifest CSV"):
        SliceDataset(folder, split="train")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no supported volume files in the folder"):
        SliceDataset(empty)
    with pytest.raises(DataError, match="no such file or folder"):
        SliceDataset(tmp_path / "nothing")


def test_a_manifest_dataset_opens_no_file_up_front(sim_dataset: list[Path], tmp_path: Path) -> None:
    """Slice counts come from the manifest: a vanished file fails only when one of its slices is read."""
    entries = read_manifest(sim_dataset[0].parent / "manifest.csv")
    ghost = ManifestEntry(tmp_path / "ghost.h5", "0" * 64, (5, 4, 64, 64), 4, "AXFLAIR", entries[0].split)
    manifest = write_manifest(tmp_path / "m.csv", [*entries, ghost])
    dataset = SliceDataset(manifest)
    assert len(dataset) == 9 + 5 and dataset._open == {}  # nothing opened yet
    dataset[0]
    assert list(dataset._open) == [entries[0].path]
    with pytest.raises(DataError, match=r"ghost\.h5: no such file"):
        dataset[10]


def test_open_files_are_bounded_and_stay_in_their_process(sim_dataset: list[Path]) -> None:
    dataset = SliceDataset(sim_dataset[0].parent, ReconTransform(coil_maps="none"), max_open=2)
    for item in (0, 3, 6, 0):
        dataset[item]
    assert list(dataset._open) == [sim_dataset[2], sim_dataset[0]]
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._open == {} and len(copy) == len(dataset)
    torch.testing.assert_close(copy[6].masked_kspace, dataset[6].masked_kspace)
    dataset.close()
    assert dataset._open == {}


def _batches(loader: DataLoader) -> list[tuple[list[str], torch.Tensor, torch.Tensor]]:
    return [(list(b.fname), b.slice_num, b.mask) for b in loader]


@pytest.mark.slow
def test_workers_serve_what_the_main_process_serves(sim_dataset: list[Path]) -> None:
    transform = ReconTransform(
        mask_func=create_mask_func("random", [0.2], [3]), deterministic_mask=True, coil_maps="acs"
    )
    dataset = SliceDataset(sim_dataset[0].parent, transform)
    dataset[0]  # a file opened in the parent must not be shared with forked workers
    serial = _batches(DataLoader(dataset, batch_size=2, num_workers=0))
    parallel = _batches(DataLoader(dataset, batch_size=2, num_workers=2, worker_init_fn=seed_mask_worker))
    assert [b[0] for b in serial] == [b[0] for b in parallel]
    for (_, slices_a, mask_a), (_, slices_b, mask_b) in zip(serial, parallel):
        assert torch.equal(slices_a, slices_b) and torch.equal(mask_a, mask_b)  # per-volume masks everywhere
    options: dict[str, Any] = {"batch_size": 2, "num_workers": 2, "worker_init_fn": seed_mask_worker}
    for plain, lists in zip(
        DataLoader(dataset, **options), DataLoader(dataset, collate_fn=collate_samples, **options)
    ):
        assert torch.equal(plain.masked_kspace, lists.masked_kspace) and lists.scale == plain.scale.tolist()


def test_collate_samples_keeps_the_numbers_as_lists(sim_dataset: list[Path]) -> None:
    transform = ReconTransform(mask_func=create_mask_func("random", [0.2], [3]), coil_maps="none")
    dataset = SliceDataset(sim_dataset[0].parent, transform)
    samples = [dataset[0], dataset[4]]
    plain, lists = default_collate(samples), collate_samples(samples)
    assert type(lists) is type(plain)
    a: Any  # the default-collated field: a tensor, a tuple of tensors or a list
    for name, a, b, one in zip(plain._fields, plain, lists, samples[0]):
        if isinstance(one, torch.Tensor):
            assert isinstance(b, torch.Tensor) and torch.equal(a, b), name
        elif name == "crop_size":
            assert [c.tolist() for c in a] == b == [[64, 64], [64, 64]]
        elif name == "fname":
            assert a == b and isinstance(b, tuple)
        else:  # one number per slice: a plain list, read back with torch.as_tensor
            assert (
                isinstance(b, list) and len(b) == 2 and torch.equal(torch.as_tensor(b, dtype=a.dtype), a)
            ), name


def test_collate_pads_missing_lesion_labels_and_names_slices_that_do_not_stack(
    sim_dataset: list[Path],
) -> None:
    from mrirecon.errors import DataError

    transform = ReconTransform(mask_func=create_mask_func("random", [0.2], [3]), coil_maps="none")
    dataset = SliceDataset(sim_dataset[0].parent, transform)
    with_labels = dataset[0]
    without = with_labels._replace(lesion_labels=torch.zeros((0, 0), dtype=torch.int16))
    batch = collate_samples([with_labels, without])  # a file without lesions beside one with them
    assert batch.lesion_labels.shape == (2, 64, 64) and not batch.lesion_labels[1].any()
    assert torch.equal(batch.lesion_labels[0], with_labels.lesion_labels)
    narrow = with_labels._replace(masked_kspace=with_labels.masked_kspace[..., :56], fname="narrow.h5")
    with pytest.raises(
        DataError, match=r"differ in masked_kspace .*narrow.h5 slice 0 \(4, 64, 56\)"
    ) as error:
        collate_samples([with_labels, narrow])
    assert "batch_size 1" in str(error.value.hint)


@pytest.mark.slow
def test_training_workers_draw_different_masks(tmp_path: Path) -> None:
    folder = tmp_path / "same"
    folder.mkdir()
    from tests.data.helpers import write_fastmri

    write_fastmri(folder / "a.h5", np.repeat(multicoil_kspace(slices=1, coils=2), 8, axis=0))
    transform = ReconTransform(mask_func=create_mask_func("random", [0.1], [4], seed=0), coil_maps="none")
    dataset = SliceDataset(folder, transform)
    plain = DataLoader(dataset, batch_size=1, num_workers=2)
    # the workers' seeds come from the loader's generator: seeded, since two random 24-line masks
    # coincide about 4 times in 10,000 (torch.manual_seed(4166) before the loader drew such seeds)
    seeded = DataLoader(
        dataset,
        batch_size=1,
        num_workers=2,
        worker_init_fn=seed_mask_worker,
        generator=torch.Generator().manual_seed(0),
    )
    masks_plain = [b.mask.flatten() for b in plain]
    masks_seeded = [b.mask.flatten() for b in seeded]
    # without reseeding both workers replay one generator: slice k of worker 0 = slice k of worker 1
    assert torch.equal(masks_plain[0], masks_plain[1])
    assert not torch.equal(masks_seeded[0], masks_seeded[1])


def test_folder_ignores_hidden_and_partial_files(sim_dataset: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    shutil.copy(sim_dataset[0], folder / "a.h5")
    (folder / ".a.h5.partial").write_bytes(b"half")
    (folder / "notes.txt").write_text("x")
    assert SliceDataset(folder).files == [folder / "a.h5"]
