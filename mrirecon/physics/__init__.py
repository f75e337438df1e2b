"""MRI physics, written once: FFTs, SENSE, the forward operator and its adjoint, data consistency,
coil sensitivities, and the complex↔channel helpers used at CNN boundaries.

All tensors are native complex (``torch.complex64``): k-space and coil maps ``(B, C, [S,] H, W)``,
images ``(B, [S,] H, W)``; masks broadcast against k-space.
"""

from mrirecon.physics.cg import conjugate_gradient
from mrirecon.physics.coils import (
    espirit_calibration_width,
    espirit_kernel_width,
    estimate_coil_maps_acs,
    estimate_coil_maps_espirit,
    normalize_coil_maps,
)
from mrirecon.physics.complex import channels_to_complex, complex_to_channels
from mrirecon.physics.consistency import (
    LogLikelihoodGradient,
    SoftDataConsistency,
    hard_data_consistency,
    log_likelihood_gradient,
)
from mrirecon.physics.fft import (
    centering_phases,
    change_convention,
    fft2c,
    fft3c,
    fftnc,
    ifft2c,
    ifft3c,
    ifftnc,
    sampled_in_convention,
)
from mrirecon.physics.operators import (
    AdjointOperator,
    ComposedOperator,
    FourierOperator,
    LinearOperator,
    MaskOperator,
    MultiCoilOperator,
    SenseOperator,
)
from mrirecon.physics.sense import rss, sense_expand, sense_reduce

__all__ = [
    "AdjointOperator",
    "ComposedOperator",
    "FourierOperator",
    "LinearOperator",
    "LogLikelihoodGradient",
    "MaskOperator",
    "MultiCoilOperator",
    "SenseOperator",
    "SoftDataConsistency",
    "centering_phases",
    "change_convention",
    "channels_to_complex",
    "complex_to_channels",
    "conjugate_gradient",
    "espirit_calibration_width",
    "espirit_kernel_width",
    "estimate_coil_maps_acs",
    "estimate_coil_maps_espirit",
    "fft2c",
    "fft3c",
    "fftnc",
    "hard_data_consistency",
    "ifft2c",
    "ifft3c",
    "ifftnc",
    "log_likelihood_gradient",
    "normalize_coil_maps",
    "rss",
    "sampled_in_convention",
    "sense_expand",
    "sense_reduce",
]
