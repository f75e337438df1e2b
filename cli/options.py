"""Option parsing shared by several commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mrirecon.data.ismrmrd_raw import Frame


def parse_split(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` → ``(0.8, 0.1, 0.1)``.

    Raises:
        ConfigError: unless three numbers >= 0 summing to 1.
    """
    from mrirecon.errors import ConfigError

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as error:
        raise ConfigError(f"--split must be three numbers train,val,test, got '{text}'") from error
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"--split must be three numbers >= 0 that sum to 1, got '{text}'")
    return values[0], values[1], values[2]


def parse_frame(text: str) -> Frame:
    """``"contrast=1,set=0"`` → the ISMRMRD :class:`~mrirecon.data.ismrmrd_raw.Frame` (others 0).

    Raises:
        ConfigError: unless comma-separated NAME=N, each NAME one of the frame's counters, once.
    """
    from mrirecon.data.ismrmrd_raw import Frame
    from mrirecon.errors import ConfigError

    values: dict[str, int] = {}
    for item in text.split(","):
        name, _, number = (part.strip() for part in item.partition("="))
        if name not in Frame._fields or not number.isdigit() or name in values:
            raise ConfigError(
                f"--frame must be NAME=N,... with NAME one of {', '.join(Frame._fields)} (each once) and "
                f"N a whole number, got '{text}'"
            )
        values[name] = int(number)
    return Frame(**values)
