"""Typed configuration: YAML mappings into frozen dataclasses, checked before anything runs.

Configs are dataclasses (one per model, one per training run, ...). :func:`from_mapping` builds one
from a plain mapping (a YAML file, the CLI's ``key=value`` overrides) and refuses anything it does
not understand with a :class:`~mrirecon.errors.ConfigError` that names the key and the allowed
keys or values. Models never see the mapping: they receive the dataclass or typed arguments.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mrirecon.errors import ConfigError

__all__ = [
    "CONFIGS_ENV",
    "apply_overrides",
    "config_dirs",
    "find_config",
    "from_mapping",
    "load_yaml",
    "to_mapping",
]

#: Environment variable naming a folder of configs searched before the shipped ones.
CONFIGS_ENV = "MRIRECON_CONFIGS"


def _shipped_configs() -> Path | None:
    """The configs installed with mrirecon (package ``mrirecon_configs``), or the checkout's."""
    import importlib.util

    spec = importlib.util.find_spec("mrirecon_configs")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    checkout = Path(__file__).resolve().parents[1] / "configs"
    return checkout if checkout.is_dir() else None


def config_dirs(sub: str = "") -> list[Path]:
    """Folders searched for configs by name, in order, those that exist: ``$MRIRECON_CONFIGS/sub``,
    ``./configs/sub`` and the configs shipped with mrirecon (``sub``: ``""`` for training configs,
    ``models`` for model configs, ``pretrained`` for the pretrained models' recipes)."""
    roots = [Path(os.environ[CONFIGS_ENV])] if os.environ.get(CONFIGS_ENV) else []
    roots.append(Path.cwd() / "configs")
    shipped = _shipped_configs()
    if shipped is not None:
        roots.append(shipped)
    out: list[Path] = []
    for root in roots:
        folder = root / sub if sub else root
        if folder.is_dir() and all(folder.resolve() != seen.resolve() for seen in out):
            out.append(folder)
    return out


def find_config(name_or_path: str | os.PathLike[str], sub: str = "", *, what: str = "config") -> Path:
    """A config file given as a path, or by name (``cirim_synthetic``, ``pretrained/cirim_brain``)
    looked up as ``<name>.yaml`` in :func:`config_dirs`.

    Raises:
        ConfigError: naming the folders searched and the names found there.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = os.fspath(name_or_path)
    looks_like_path = text.endswith((".yaml", ".yml")) and ("/" in text or os.sep in text)
    if looks_like_path:
        shipped = _shipped_by_path(path, sub)
        if shipped is not None:
            return shipped
        raise ConfigError(
            "config file not found", path=path, hint=f"check the path, or give a config's name ({what})"
        )
    stem = text[: -len(path.suffix)] if path.suffix in (".yaml", ".yml") else text
    for folder in config_dirs(sub):
        candidate = folder / f"{stem}.yaml"
        if candidate.is_file():
            return candidate
    folders = config_dirs(sub)
    known = sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})
    raise ConfigError(
        f"no {what} file or name '{text}'",
        hint=(f"known names: {', '.join(known)}; " if known else "")
        + f"searched {', '.join(str(f) for f in folders) or 'no config folder'}; "
        f"or set {CONFIGS_ENV} to a folder of configs",
    )


def _shipped_by_path(path: Path, sub: str) -> Path | None:
    """The config a path into a checkout's ``configs/`` folder names, found by name where that path
    does not exist (``configs/cirim_synthetic.yaml``, as the docs write it, after a wheel install),
    with a notice saying which file is used; None when the path is not of that form or no config of
    that name exists."""
    import warnings

    from mrirecon.errors import Notice

    parts = path.parts
    if "configs" not in parts or path.is_absolute():
        return None
    rest = list(parts[len(parts) - parts[::-1].index("configs") :])
    if sub and rest[:1] == [sub]:
        rest = rest[1:]
    if not rest:
        return None
    name = str(Path(*rest).with_suffix(""))
    found = next((f / f"{name}.yaml" for f in config_dirs(sub) if (f / f"{name}.yaml").is_file()), None)
    if found is not None:
        warnings.warn(Notice(f"{path} is not here: using the config '{name}' ({found})"), stacklevel=3)
    return found


T = TypeVar("T")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a :class:`ConfigError` naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", path=path, hint="check the path, or list configs/")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"not valid YAML: {error}".replace("\n", " "), path=path) from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a mapping of keys to values, got {type(data).__name__}", path=path
        )
    return data


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


class _IntOverride(int):
    """A number given as a ``key=value`` override, which keeps the text it was typed as: a text or
    path field takes the text (a folder named ``2024``, a run named ``007``), any other the number."""

    text: str


class _FloatOverride(float):
    """As :class:`_IntOverride`, for a value YAML reads as a float (``1e3``, ``2.50``)."""

    text: str


def _override_value(raw: str) -> Any:
    """An override's value: YAML's reading of it, a number remembering its text."""
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw
    if not _is_number(value):
        return value
    number: _IntOverride | _FloatOverride = (
        _IntOverride(value) if isinstance(value, int) else _FloatOverride(value)
    )
    number.text = raw.strip()
    return number


#: What a number refused for a text field adds: how to give a name made of digits in YAML.
_QUOTE = " (quote a name YAML reads as a number: '2024')"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """``value`` with every override number turned back into a plain ``int`` or ``float``."""
    if isinstance(value, _IntOverride):
        return int(value)
    if isinstance(value, _FloatOverride):
        return float(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` to the annotated type ``tp`` or raise ConfigError."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return _plain(value)
    if origin in (typing.Union, types.UnionType):
        return _union(value, typing.get_args(tp), where)
    if origin is typing.Literal:
        return _literal(value, typing.get_args(tp), where)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass(value, tp, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum(value, tp, where)
    if origin in (tuple, list, Sequence) or tp in (tuple, list):
        return _sequence(value, tp, where)
    if origin in (dict, Mapping) or tp is dict:
        return _mapping(value, tp, where)
    scalar = _SCALARS.get(tp)
    if scalar is not None:
        return scalar(value, where)
    raise ConfigError(f"'{where}': cannot read a value of type {_type_name(tp)}")


def _union(value: Any, args: tuple[Any, ...], where: str) -> Any:
    if value is None and type(None) in args:
        return None
    errors = []
    for option in args:
        if option is type(None):
            continue
        try:
            return _convert(value, option, where)
        except ConfigError as error:
            errors.append(error.message)
    # each option's own message names the key already; one sentence that says every type allowed
    kinds = [_kind(option) for option in args if option is not type(None)]
    if kinds and all(kinds):
        allowed = " or ".join(dict.fromkeys(kind for kind in kinds if kind))
        quote = _QUOTE if "text" in kinds and _is_number(value) else ""
        raise ConfigError(f"'{where}' must be {allowed}, got {_plain(value)!r}{quote}")
    raise ConfigError(f"'{where}': {errors[-1] if errors else 'invalid value'}")


def _kind(tp: Any) -> str | None:
    """A type in words, for a message (``a list``, ``a number``, ``text``, ``'auto'``); None for a
    type the words would not describe (a dataclass, an enum)."""
    origin = typing.get_origin(tp) or tp
    if origin is typing.Literal:
        return " or ".join(repr(arg) for arg in typing.get_args(tp))
    if origin is not str and isinstance(origin, type) and issubclass(origin, Sequence):
        return "a list"
    if origin is bool:
        return "true or false"
    if origin in (int, float):
        return "a number"
    if origin in (str, Path):
        return "text"
    return None


def _literal(value: Any, args: tuple[Any, ...], where: str) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value not in args and str(value) in args:
        value = str(value)  # YAML reads `precision: 32` as a number; the choice is the string "32"
    if value not in args:
        allowed = ", ".join(repr(a) for a in args)
        raise ConfigError(f"'{where}' must be one of {allowed}; got {value!r}")
    return value


def _dataclass(value: Any, tp: type, where: str) -> Any:
    if isinstance(value, tp):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"'{where}' must be a mapping of {tp.__name__} fields, got {value!r}")
    return from_mapping(tp, value, where=where)


def _enum(value: Any, tp: type[enum.Enum], where: str) -> Any:
    try:
        return tp(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in tp)
        raise ConfigError(f"'{where}' must be one of {allowed}; got {value!r}") from None


def _sequence(value: Any, tp: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ConfigError(f"'{where}' must be a list, got {value!r}")
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin is tuple and args:
        if len(args) != len(value):
            raise ConfigError(f"'{where}' must have {len(args)} entries, got {len(value)}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    item = args[0] if args else Any
    items = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if (origin is tuple or tp is tuple) else items


def _mapping(value: Any, tp: Any, where: str) -> Any:
    if not isinstance(value, Mapping):
        raise ConfigError(f"'{where}' must be a mapping, got {value!r}")
    args = typing.get_args(tp)
    key_t, val_t = args if args else (Any, Any)
    return {_convert(k, key_t, where): _convert(v, val_t, f"{where}.{k}") for k, v in value.items()}


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"'{where}' must be true or false, got {value!r}")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"'{where}' must be an integer, got {value!r}")
    return int(value)


def _float(value: Any, where: str) -> float:
    if isinstance(value, str):
        # YAML 1.1 reads 3e-4 (no dot) as a string; accept what float() accepts.
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"'{where}' must be a number, got {value!r}")
    return float(value)


def _text(value: Any, where: str, what: str) -> str | Path:
    if isinstance(value, _IntOverride | _FloatOverride):
        return value.text
    if not isinstance(value, str | Path) or (what == "a string" and isinstance(value, Path)):
        quote = _QUOTE if _is_number(value) else ""
        raise ConfigError(f"'{where}' must be {what}, got {_plain(value)!r}{quote}")
    return value


def _str(value: Any, where: str) -> str:
    return str(_text(value, where, "a string"))


def _path(value: Any, where: str) -> Path:
    return Path(_text(value, where, "a path"))


_SCALARS: dict[Any, Any] = {bool: _bool, int: _int, float: _float, str: _str, Path: _path}


def from_mapping(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build the dataclass ``cls`` from ``data``, checking every key and value.

    Args:
        cls: A dataclass type; its field annotations define what is accepted.
        data: The mapping (from YAML or overrides).
        where: Dotted prefix of these keys in the whole config, for messages.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: on an unknown key (the allowed keys are listed), a missing required key, or a
            value of the wrong type or outside its allowed values.
    """
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"{cls!r} is not a dataclass type")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{where}." if where else ""
    unknown = [k for k in data if k not in fields]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), list(fields), n=1, cutoff=0.5)
        guess = f"did you mean '{prefix}{close[0]}'? " if close else ""
        raise ConfigError(
            f"unknown key '{prefix}{unknown[0]}'",
            hint=f"{guess}allowed keys{' in ' + where if where else ''}: {', '.join(fields)}",
        )
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{prefix}{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key '{prefix}{name}'")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{where or cls.__name__}: {error}") from error


def to_mapping(obj: Any) -> Any:
    """A dataclass (possibly nested) as plain YAML-safe data: dicts, lists, str, numbers, bools."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, list | tuple):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_mapping(v) for k, v in obj.items()}
    return obj


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides to a nested mapping; values are parsed as YAML scalars,
    except that a number given for a text or path field stays the text typed (``data.train=2024``
    is the folder ``2024``, ``output_dir=1e3`` the folder ``1e3``).

    Args:
        data: The mapping (not modified).
        overrides: Strings like ``"optim.lr=3e-4"`` or ``"model.cells=[gru, indrnn]"``.

    Returns:
        A new nested mapping.

    Raises:
        ConfigError: for an override without ``=`` or that descends into a non-mapping.
    """
    out: dict[str, Any] = _deep_copy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. optim.lr=3e-4)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override '{item}' has an empty key")
        value = _override_value(raw)
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{item}': '{'.'.join(parts[: i + 1])}' is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: _deep_copy(v) if isinstance(v, Mapping) else (list(v) if isinstance(v, list) else v)
        for k, v in data.items()
    }
