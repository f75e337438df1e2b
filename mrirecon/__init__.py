"""mrirecon: accelerated MRI reconstruction with physics-guided recurrent networks.

The package is layered (see ``docs/architecture.md``): ``physics`` and ``masks`` at the base, then
``data``, ``models``, ``evaluation``, ``training``, ``export`` and ``inference``. Importing
``mrirecon`` itself is cheap: subpackages are imported on first use.
"""

from mrirecon._version import __version__
from mrirecon.errors import CheckpointError, ConfigError, DataError, ExportError, ModelError, MriReconError

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "ExportError",
    "ModelError",
    "MriReconError",
    "__version__",
]
