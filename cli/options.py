"""Option parsing shared by several commands."""

from __future__ import annotations


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
