"""The data layer: every input read one way, synthetic datasets, manifests, datasets and transforms.

Entry points (docs/data.md; contracts in docs/interfaces.md §1, §2, §6 and §9):

- :func:`mrirecon.data.volume.open_volume`: fastMRI HDF5, ISMRMRD raw, BART and NumPy k-space as a
  :class:`~mrirecon.data.raw.RawVolume` of 2-D slices;
- :func:`mrirecon.data.fastmri_writer.write_volume`: the one writer of the fastMRI layout;
- :func:`mrirecon.data.convert.convert_volume`: any input → a fastMRI file (``mrirecon convert``);
- :func:`mrirecon.data.simulate.simulate_dataset`: synthetic brain datasets (``mrirecon simulate``);
- :mod:`mrirecon.data.manifest`: ``read_manifest``, ``create_manifest``, ``verify_manifest``;
- :class:`mrirecon.data.dataset.SliceDataset` and :class:`mrirecon.data.transforms.ReconTransform`:
  slices as :class:`~mrirecon.data.sample.ReconSample` for training and inference.

Submodules are imported on use (``import mrirecon.data`` stays cheap).
"""
