"""Configs: dataclasses filled from TOML files, with one-line errors for unknown keys and wrong types.

    cfg = load_config(TrainConfig, "run.toml")     # nested dataclass fields are TOML tables
"""

from __future__ import annotations

import dataclasses
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from luoxia.core.errors import InvalidParameterError, UserFileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


def load_toml(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UserFileError(f"config file {path} not found; give an existing .toml file") from None
    except OSError as e:
        raise UserFileError(f"cannot read config file {path} ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise InvalidParameterError(f"{path} is not valid TOML ({e}); fix the file") from None


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Build dataclass `cls` from `data`; unknown keys and wrongly typed values raise one-line errors."""
    if not isinstance(data, dict):
        raise InvalidParameterError(f"{where} must be a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InvalidParameterError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in {where}; "
            f"known keys: {', '.join(fields)}"
        )
    values = {}
    for name, value in data.items():
        values[name] = _convert(hints[name], value, f"{where}.{name}")
    return cls(**values)


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except InvalidParameterError as e:
                errors.append(e)
        raise errors[0]
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise InvalidParameterError(f"{where} must be a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise InvalidParameterError(f"{where} must be one of {typing.get_args(hint)}, got {value!r}")
        return value
    if hint is Any or hint is dict:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    scalar = hint in (int, float, str, bool)
    if scalar and (not isinstance(value, hint) or (hint is not bool and isinstance(value, bool))):
        raise InvalidParameterError(f"{where} must be {hint.__name__}, got {value!r}")
    return value
