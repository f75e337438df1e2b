"""models layer: every reconstructor behind one interface, and their registry.

- :class:`~mrirecon.models.base.Reconstructor` / :class:`~mrirecon.models.base.ReconOutput`: the
  interface (docs/interfaces.md §3).
- :mod:`mrirecon.models.registry`: name → (model class, config dataclass); ``build_model``.
- :func:`load_model_config`: ``configs/models/<name>.yaml`` or a path → (name, config).
- :mod:`mrirecon.models.io`: model payloads (``save_model`` / ``load_model``).
- Recurrent models: :mod:`~mrirecon.models.rim` (RIM, CIRIM), :mod:`~mrirecon.models.recurrentvarnet`.
"""

from mrirecon.models.config_files import load_model_config

__all__ = ["load_model_config"]
