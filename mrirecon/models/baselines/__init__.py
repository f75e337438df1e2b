"""The baselines every paper compares the recurrent models with, behind the same interface.

Classical (``trainable = False``, no checkpoint): :class:`ZeroFilled` (``zero_filled``),
:class:`SenseCG` (``sense``), :class:`L1WaveletCS` (``cs_l1wavelet``). Learned:
:class:`UNetRecon` (``unet``), :class:`E2EVarNet` (``e2e_varnet``). docs/baselines.md describes
each and its defaults.
"""

from mrirecon.models.baselines.compressed_sensing import L1WaveletConfig, L1WaveletCS
from mrirecon.models.baselines.sense import SenseCG, SenseConfig
from mrirecon.models.baselines.unet import NormUNet, UNet, UNetConfig, UNetRecon
from mrirecon.models.baselines.varnet import E2EVarNet, VarNetConfig
from mrirecon.models.baselines.zero_filled import ZeroFilled, ZeroFilledConfig, zero_filled_image

__all__ = [
    "E2EVarNet",
    "L1WaveletCS",
    "L1WaveletConfig",
    "NormUNet",
    "SenseCG",
    "SenseConfig",
    "UNet",
    "UNetConfig",
    "UNetRecon",
    "VarNetConfig",
    "ZeroFilled",
    "ZeroFilledConfig",
    "zero_filled_image",
]
