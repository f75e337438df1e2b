"""Run-time shape checks for public functions.

Comments about shapes drift; checks do not. ``check_shape(x, "B C H W", name="kspace")`` raises a
``ValueError`` naming the argument, the expected axes and the actual shape. Axis names bind across
calls through a shared ``dims`` dictionary, so two tensors can be checked for matching sizes.
"""

from __future__ import annotations

import torch

__all__ = ["check_complex", "check_shape"]


def check_shape(
    x: torch.Tensor,
    spec: str,
    *,
    name: str = "tensor",
    dims: dict[str, int] | None = None,
) -> dict[str, int]:
    """Check that ``x`` has the axes named in ``spec`` and return the bound sizes.

    Args:
        x: The tensor to check.
        spec: Space-separated axis names, e.g. ``"B C H W"``. A name that is a number must match
            exactly; ``"*"`` as the first entry accepts any number of leading axes; ``"1|H"`` style
            alternatives are not supported (use two checks).
        name: The argument's name, for the message.
        dims: Sizes bound by earlier checks; updated in place with new bindings.

    Returns:
        The dictionary of bound axis sizes.

    Raises:
        ValueError: if the rank or a bound size does not match.
    """
    bound = {} if dims is None else dims
    axes = spec.split()
    leading = bool(axes) and axes[0] == "*"
    if leading:
        axes = axes[1:]
    if (leading and x.ndim < len(axes)) or (not leading and x.ndim != len(axes)):
        want = ("... " if leading else "") + " ".join(axes)
        raise ValueError(f"{name} must have shape ({want}), got {tuple(x.shape)}")
    actual = x.shape[x.ndim - len(axes) :]
    for axis, size in zip(axes, actual):
        if axis.isdigit():
            if size != int(axis):
                raise ValueError(f"{name}: axis '{axis}' must have size {axis}, got shape {tuple(x.shape)}")
            continue
        if axis in bound and bound[axis] != size:
            raise ValueError(
                f"{name}: axis '{axis}' has size {size}, but {bound[axis]} elsewhere; "
                f"got shape {tuple(x.shape)}"
            )
        bound[axis] = int(size)
    return bound


def check_complex(x: torch.Tensor, *, name: str = "tensor") -> None:
    """Raise ``TypeError`` unless ``x`` is a complex tensor."""
    if not x.is_complex():
        raise TypeError(f"{name} must be a complex tensor (complex64), got dtype {x.dtype}")
