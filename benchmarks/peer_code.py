"""Loading the authors' code (DIRECT, ATOMMIC, mridc, fastMRI) from local exported source trees.

The trees are exported with ``git archive`` into one folder (``direct/``, ``atommic/``, ``mridc/``,
``fastmri/``), each with a ``.peer_commit`` file naming the commit. Nothing here is vendored: the modules are
imported from those trees, and only what their package ``__init__`` chains drag in (the Lightning
base class, the ``typecheck`` decorator, DIRECT's training engine) is replaced by stand-ins that keep
the attributes the models read. Used by the parity goldens (``benchmarks.parity``) and the same-run
timing against the references (``benchmarks.models --peers``).
"""

from __future__ import annotations

import ast
import importlib
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def peer_commit(root: Path) -> str:
    marker = root / ".peer_commit"
    if not marker.is_file():
        raise SystemExit(f"{root}: no .peer_commit file naming the exported commit")
    return marker.read_text().strip()


def _package_stubs(root: Path, packages: Sequence[str]) -> None:
    """Namespace packages for ``packages`` so that their ``__init__`` chains are not run."""
    for name in packages:
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(root.joinpath(*name.split(".")))]
            sys.modules[name] = module


def _lightning_stub() -> None:
    """``pytorch_lightning.Trainer`` is only a type annotation in the model modules."""
    try:
        importlib.import_module("pytorch_lightning")
    except ImportError:
        module = types.ModuleType("pytorch_lightning")
        module.Trainer = object  # type: ignore[attr-defined]
        sys.modules["pytorch_lightning"] = module


def _base_model_stub(module_name: str) -> None:
    """The Lightning base class of ATOMMIC/mridc models, reduced to the attributes the CIRIM reads
    (with the real class's defaults)."""
    import torch
    from omegaconf import OmegaConf

    class BaseMRIReconstructionModel(torch.nn.Module):
        def __init__(self, cfg: Any, trainer: Any = None):
            super().__init__()
            values = OmegaConf.to_container(cfg, resolve=True)
            assert isinstance(values, dict)
            self.fft_centered = values.get("fft_centered", False)
            self.fft_normalization = values.get("fft_normalization", "backward")
            self.spatial_dims = values.get("spatial_dims", None)
            self.coil_dim = values.get("coil_dim", 1)
            self.coil_combination_method = values.get("coil_combination_method", "SENSE")

    module = types.ModuleType(module_name)
    module.BaseMRIReconstructionModel = BaseMRIReconstructionModel  # type: ignore[attr-defined]
    sys.modules[module_name] = module


def _typecheck_stub(module_name: str) -> None:
    """``typecheck()`` passes through for models that declare no neural types (the CIRIM)."""
    module = types.ModuleType(module_name)
    module.typecheck = lambda *_a, **_k: lambda f: f  # type: ignore[attr-defined]
    sys.modules[module_name] = module


def load_atommic(root: Path) -> Any:
    """ATOMMIC's ``cirim`` module (its package ``__init__`` pulls in the training stack: stubbed)."""
    name = "atommic.collections.reconstruction.nn.cirim"
    if name not in sys.modules:
        sys.path.insert(0, str(root))
        _package_stubs(
            root,
            [
                "atommic",
                "atommic.core",
                "atommic.core.classes",
                "atommic.collections",
                "atommic.collections.common",
                "atommic.collections.common.parts",
                "atommic.collections.reconstruction",
                "atommic.collections.reconstruction.nn",
            ],
        )
        _lightning_stub()
        _base_model_stub("atommic.collections.reconstruction.nn.base")
        _typecheck_stub("atommic.core.classes.common")
    return importlib.import_module(name)


def load_mridc(root: Path) -> Any:
    """mridc's ``cirim`` module, loaded like ATOMMIC's (its mask module needs numba: stubbed, it is
    only a type annotation in ``utils``)."""
    name = "mridc.collections.reconstruction.nn.cirim"
    if name not in sys.modules:
        sys.path.insert(0, str(root))
        _package_stubs(
            root,
            [
                "mridc",
                "mridc.core",
                "mridc.core.classes",
                "mridc.collections",
                "mridc.collections.common",
                "mridc.collections.common.parts",
                "mridc.collections.reconstruction",
                "mridc.collections.reconstruction.data",
                "mridc.collections.reconstruction.nn",
                "mridc.collections.reconstruction.nn.rim",
            ],
        )
        _lightning_stub()
        _base_model_stub("mridc.collections.reconstruction.nn.base")
        _typecheck_stub("mridc.core.classes.common")
        subsample = types.ModuleType("mridc.collections.reconstruction.data.subsample")
        subsample.MaskFunc = object  # type: ignore[attr-defined]
        sys.modules[subsample.__name__] = subsample
    return importlib.import_module(name)


def load_direct(root: Path) -> dict[str, Any]:
    """DIRECT's RecurrentVarNet, RIM, UnetModel2d, transforms, and the engine's coil-map refinement.

    ``direct.nn.mri_models`` imports DIRECT's whole training engine (torchvision, tensorboard, ...),
    so its two methods ``compute_model_per_coil`` and ``compute_sensitivity_map`` are compiled from
    DIRECT's source text and bound to a stand-in engine holding the sensitivity model.
    """
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    transforms = importlib.import_module("direct.data.transforms")
    source_path = root / "direct" / "nn" / "mri_models.py"
    tree = ast.parse(source_path.read_text())
    engine = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MRIModelEngine")
    wanted = {"compute_model_per_coil", "compute_sensitivity_map"}
    methods = [n for n in engine.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    if {m.name for m in methods} != wanted:
        raise SystemExit(f"{source_path}: MRIModelEngine lacks {sorted(wanted)}")
    for method in methods:
        method.decorator_list = []
    import __future__

    import torch

    namespace: dict[str, Any] = {"torch": torch, "T": transforms}
    code = compile(
        ast.Module(body=list(methods), type_ignores=[]),
        str(source_path),
        "exec",
        flags=__future__.annotations.compiler_flag,
        dont_inherit=True,
    )
    exec(code, namespace)
    return {
        "transforms": transforms,
        "recurrentvarnet": importlib.import_module("direct.nn.recurrentvarnet.recurrentvarnet"),
        "unet": importlib.import_module("direct.nn.unet.unet_2d"),
        "rim": importlib.import_module("direct.nn.rim.rim"),
        "compute_model_per_coil": namespace["compute_model_per_coil"],
        "compute_sensitivity_map": namespace["compute_sensitivity_map"],
    }


def load_fastmri(root: Path) -> Any:
    """fastMRI's ``varnet`` module (``VarNet``, ``NormUnet``, ``SensitivityModel``).

    ``fastmri/__init__.py`` is run as it is (it needs h5py); the ``__init__`` of ``fastmri.data``
    (pandas, requests, yaml, tqdm: the datasets) and of ``fastmri.models`` (the active-acquisition
    policies) are not: their packages are namespace stand-ins, and ``varnet`` imports only
    ``fastmri.data.transforms`` and ``fastmri.models.unet`` from them.
    """
    name = "fastmri.models.varnet"
    if name not in sys.modules:
        import warnings

        sys.path.insert(0, str(root))
        with warnings.catch_warnings():  # "Could not retrieve fastmri version!" (not pip-installed)
            warnings.simplefilter("ignore")
            package = importlib.import_module("fastmri")
        origin = Path(str(getattr(package, "__file__", ""))).resolve()
        if not origin.is_relative_to(root.resolve()):
            raise SystemExit(f"fastmri was imported from {origin}, not from {root}")
        _package_stubs(root, ["fastmri.data", "fastmri.models"])
    return importlib.import_module(name)


class DirectEngine:
    """What DIRECT's two engine methods read from ``self``."""

    def __init__(self, direct: dict[str, Any], sensitivity_model: Any):
        self.models = {} if sensitivity_model is None else {"sensitivity_model": sensitivity_model}
        self._coil_dim = 1
        self._complex_dim = -1
        self.ndim = 2
        self._per_coil = direct["compute_model_per_coil"]
        self._refine = direct["compute_sensitivity_map"]

    def compute_model_per_coil(self, model_name: str, data: Any) -> Any:
        return self._per_coil(self, model_name, data)

    def compute_sensitivity_map(self, sensitivity_map: Any) -> Any:
        return self._refine(self, sensitivity_map)
