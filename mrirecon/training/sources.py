"""Datasets for a training run from the config's folders or manifests, and their checksum.

- :func:`build_datasets`: ``SliceDataset`` per split with a ``ReconTransform`` (masks drawn afresh
  per slice for training, seeded per volume for validation and test);
- :func:`data_convention`: the FFT convention the run trains in (the files' own when
  ``data.centered`` is null), refusing data without a reference and conventions that disagree;
- :func:`data_checksum`: the sha256 a checkpoint records (``manifest_sha256``): of the manifest CSV
  when there is one, otherwise of the listing (name and size) of the source folders and files;
- :func:`ensure_synthetic`: simulate the dataset a ``*_synthetic.yaml`` config names when it does
  not exist yet.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mrirecon.atomic import PARTIAL_SUFFIX, final_name
from mrirecon.errors import ConfigError, MriReconError, Notice
from mrirecon.runtime import launched_rank
from mrirecon.training.config import DataSection

__all__ = [
    "SPLITS",
    "build_datasets",
    "data_checksum",
    "data_convention",
    "ensure_synthetic",
    "launched_rank",
    "source_paths",
]

SPLITS = ("train", "val", "test")


def source_paths(source: str | Sequence[str]) -> list[Path]:
    """A source (one path or a list of paths) as a list of paths."""
    if isinstance(source, str):
        return [Path(source)]
    return [Path(s) for s in source]


def _check_exists(split: str, source: str | Sequence[str]) -> None:
    for path in source_paths(source):
        if not path.exists():
            raise ConfigError(
                f"the {split} data '{path}' does not exist",
                hint=f"fix data.{split} or data.manifest (relative paths start at the working directory)",
            )


def build_datasets(data: DataSection, splits: Sequence[str] = SPLITS) -> dict[str, Any]:
    """One ``SliceDataset`` per split that has a source.

    Raises:
        ConfigError: if a source does not exist, or train or val has no source.
        DataError: from the data layer, for unreadable files (unless ``data.skip_bad``).
    """
    if data.simulation is not None:
        return _simulated_datasets(data, splits)
    sources = {}
    for split in splits:
        source = data.source(split)  # type: ignore[arg-type]
        if source is None:
            if split in ("train", "val"):
                raise ConfigError(f"no {split} data", hint=f"set data.{split} or data.manifest")
            continue
        _check_exists(split, source)
        if split == "test" and data.test is None and not _manifest_has_split(Path(str(source)), split):
            continue  # the shared manifest has no test rows: no test set
        sources[split] = source_paths(source)

    from mrirecon.data.dataset import SliceDataset

    out: dict[str, Any] = {}
    for split, paths in sources.items():
        # a manifest serves its rows of this split; folders and files serve everything they hold
        split_arg = split if any(p.suffix.lower() == ".csv" for p in paths) else None
        out[split] = SliceDataset(
            [str(p) for p in paths] if len(paths) > 1 else paths[0],
            _transform(data, training=(split == "train")),
            split=split_arg,
            skip_bad=data.skip_bad,
            centered=data.centered,
        )
    return out


def data_convention(data: DataSection, datasets: Mapping[str, Any], model_centered: bool | None) -> bool:
    """The FFT convention of a run's k-space: ``data.centered``, or the files' own when it is null.

    Every volume of the splits is checked (datasets without ``file_facts``, the simulated ones,
    are centred and have references).

    Args:
        data: The data section.
        datasets: The run's datasets by split.
        model_centered: The model's ``fft_centered`` (None for a model without the setting).

    Raises:
        ConfigError: a volume without a fully sampled reference, files of both conventions under
            ``data.centered: null``, or a model of the other convention.
    """
    conventions: dict[bool, Path] = {}
    for split, dataset in datasets.items():
        facts = dataset.file_facts() if hasattr(dataset, "file_facts") else {}
        missing = [path for path, fact in facts.items() if not fact.has_target]
        if missing:
            measured = [path for path in missing if not facts[path].own_mask]
            hint = (
                f"a fully sampled file without 'reconstruction_rss' gets it from `mrirecon convert "
                f"{measured[0].name} -o NEW.h5`; train on the converted files"
                if measured
                else "training and scoring need fully sampled data; reconstruct prospectively "
                "undersampled scans with mrirecon infer"
            )
            example = (measured or missing)[0]
            raise ConfigError(
                f"{len(missing)} {split} file(s) have no fully sampled reference, e.g. {example}", hint=hint
            )
        for path, fact in facts.items():
            conventions.setdefault(fact.centered, path)
    if data.centered is not None:
        return data.centered
    if len(conventions) > 1:
        raise ConfigError(
            f"the data mix centred ({conventions[True]}) and uncentred ({conventions[False]}) k-space",
            hint="train on files of one FFT convention, or set data.centered for all of them",
        )
    centered = next(iter(conventions), True)
    if model_centered is not None and model_centered != centered:
        example = conventions[centered]
        raise ConfigError(
            f"the data's k-space is {'centred' if centered else 'uncentred'} (e.g. {example}) and the "
            f"model's fft_centered is {str(model_centered).lower()}",
            hint=f"set model.params.fft_centered: {str(centered).lower()}",
        )
    return centered


#: Each split's simulated stream: validation and test slices are seeded apart from every training
#: stream (with ``seed + 1`` and ``seed + 2`` they were the training slices of those seeds, so a
#: seed sweep trained on the other runs' validation and test slices).
_STREAMS = {"train": 0, "val": 0x76616C, "test": 0x74657374}


def _simulated_datasets(data: DataSection, splits: Sequence[str]) -> dict[str, Any]:
    """On-the-fly realistic simulation (``data.simulation``): one seeded stream per split."""
    from mrirecon.data.stream import SimulatedSliceDataset

    sim = data.simulation
    assert sim is not None
    lengths = {"train": sim.train_slices, "val": sim.val_slices, "test": sim.test_slices}
    return {
        split: SimulatedSliceDataset(
            lengths[split],
            sim.seed,
            sim.options,
            _transform(data, training=(split == "train")),
            name=f"sim_{split}",
            target=sim.train_target if split == "train" else "noisy",
            stream=_STREAMS[split],
        )
        for split in splits
        if lengths[split] > 0
    }


def _manifest_has_split(path: Path, split: str) -> bool:
    from mrirecon.data.manifest import read_manifest

    return any(entry.split == split for entry in read_manifest(path))


def _transform(data: DataSection, *, training: bool) -> Any:
    from mrirecon.data.transforms import ReconTransform
    from mrirecon.masks import create_mask_func

    mask = data.mask
    options: dict[str, Any] = dict(mask.options)
    mask_func = create_mask_func(mask.type, mask.center_fractions, mask.accelerations, **options)
    return ReconTransform(
        mask_func,
        deterministic_mask=not training,
        coil_maps=data.coil_maps,
        centered=data.centered,
    )


def _listing_digest(digest: Any, path: Path) -> None:
    if path.is_file():
        if path.suffix.lower() == ".csv":
            digest.update(path.read_bytes())
        else:
            digest.update(f"{path.name}\t{path.stat().st_size}\n".encode())
        return
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{item.relative_to(path).as_posix()}\t{item.stat().st_size}\n".encode())


def data_checksum(data: DataSection) -> str | None:
    """sha256 of the data a run trains on: the manifest's bytes, or the sources' listing.

    Returns ``None`` when no source exists yet; for on-the-fly simulation, the sha256 of its settings.
    """
    if data.simulation is not None:
        import json

        from mrirecon.config import to_mapping

        text = json.dumps(to_mapping(data.simulation), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()
    sources: list[Path] = []
    for split in SPLITS:
        source = data.source(split)  # type: ignore[arg-type]
        if source is not None:
            sources.extend(p for p in source_paths(source) if p not in sources)
    existing = [p for p in sources if p.exists()]
    if not existing:
        return None
    if len(existing) == 1 and existing[0].is_file() and existing[0].suffix.lower() == ".csv":
        return hashlib.sha256(existing[0].read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for path in existing:
        _listing_digest(digest, path)
    return digest.hexdigest()


def _say_if_other_than_synthetic(manifest: Path, synthetic: Any) -> None:
    """A manifest that exists is used as it is: say so when it lists other data than the
    ``data.synthetic`` set the config describes (another simulation into the same folder)."""
    from mrirecon.data.manifest import read_manifest

    try:
        entries = read_manifest(manifest)
    except MriReconError:
        return  # reading it for training reports what is wrong with it
    described = (synthetic.slices, synthetic.coils, synthetic.size, synthetic.size)
    shapes = sorted({tuple(e.shape) for e in entries})
    if len(entries) != synthetic.volumes or shapes != [described]:
        listed = ", ".join("×".join(map(str, s)) for s in shapes[:3]) + (" ..." if len(shapes) > 3 else "")
        warnings.warn(
            Notice(
                f"{manifest} exists and lists {len(entries)} volume(s) of {listed}, not the "
                f"{synthetic.volumes} of {'×'.join(map(str, described))} data.synthetic describes; "
                "training uses it as it is (delete its folder to simulate the configured set)"
            ),
            stacklevel=3,
        )


def ensure_synthetic(data: DataSection, echo: Callable[[str], object] = print) -> Path | None:
    """Simulate ``data.synthetic`` into the manifest's folder if that manifest does not exist.

    Returns:
        The manifest path when a simulation was configured and a split reads the manifest, else
        ``None``.
    """
    if data.synthetic is None or data.manifest is None:
        return None
    if all(data.source(split) != data.manifest for split in ("train", "val", "test")):
        return None  # every split has its own source: the recipe's data are not needed
    manifest = Path(data.manifest)
    if manifest.exists():
        if launched_rank() == 0:
            _say_if_other_than_synthetic(manifest, data.synthetic)
        return manifest
    if manifest.name != "manifest.csv":
        raise ConfigError(
            f"'data.manifest' {str(manifest)!r} does not exist, and the simulation of 'data.synthetic' "
            "writes manifest.csv",
            hint="fix the path if the data exist; to simulate, point data.manifest to FOLDER/manifest.csv",
        )
    if launched_rank() != 0:
        return _wait_for(manifest)  # rank 0 of this distributed run is simulating the data
    from mrirecon.data.simulate import LesionOptions, check_empty_output, simulate_dataset

    left = _interrupted_simulation(manifest.parent, data.synthetic.seed)
    if left:
        echo(
            f"{manifest.parent} holds {len(left)} volume(s) of a simulation of data.synthetic that was "
            "interrupted before it wrote manifest.csv: simulating again"
        )
        for path in left:
            path.unlink()
    try:
        check_empty_output(manifest.parent, overwrite=False)
    except ConfigError as error:
        raise ConfigError(
            f"'data.manifest' {str(manifest)!r} does not exist, but its folder holds other files: "
            "mrirecon simulates only into an empty folder",
            hint="fix data.manifest if those files are your data, or point it to a new folder",
        ) from error

    syn = data.synthetic
    echo(
        f"Simulating {syn.volumes} volumes ({syn.slices} slices, {syn.coils} coils, "
        f"{syn.size}×{syn.size}) into {manifest.parent} ..."
    )
    simulate_dataset(
        manifest.parent,
        volumes=syn.volumes,
        slices=syn.slices,
        coils=syn.coils,
        size=(syn.size, syn.size),
        seed=syn.seed,
        contrast=syn.contrast,
        snr=syn.snr,
        lesions=LesionOptions() if syn.lesions else False,
        echo=echo,
    )
    if not manifest.exists():
        raise ConfigError(
            f"the simulation did not write the manifest '{manifest}'",
            hint="data.manifest must be the manifest.csv inside the simulated folder",
        )
    return manifest


def _interrupted_simulation(folder: Path, seed: int) -> list[Path]:
    """The files an interrupted simulation of seed ``seed`` left in ``folder`` (its volumes and
    their partial files, no manifest), when the folder's datasets are nothing else; else []."""
    from mrirecon.data.simulate import is_volume_name

    if not folder.is_dir():
        return []
    held = [
        path
        for path in folder.iterdir()
        if path.suffix in (".h5", ".csv") or path.name.endswith(PARTIAL_SUFFIX)
    ]
    if held and all(is_volume_name(final_name(path).name, seed) for path in held):  # (or its partial file)
        return held
    return []


def _wait_for(manifest: Path, timeout: float = 3600.0) -> Path:
    deadline = time.monotonic() + timeout
    while not manifest.exists():
        if time.monotonic() > deadline:
            raise ConfigError(
                f"waited {timeout:.0f} s for rank 0 to simulate '{manifest}'",
                hint="simulate the data first with `mrirecon simulate`, then start the distributed run",
            )
        time.sleep(min(2.0, timeout))
    return manifest
