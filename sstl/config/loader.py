"""Config loading: plain mappings (parsed YAML / JSON) -> the typed section dataclasses.

:func:`load_section` rejects unknown keys and bad values with a message naming the key, the value
and what is allowed; :func:`check` is the one-line form of that message the sections'
``__post_init__`` use and :func:`at_least` the usual lower bound. These are the only range
checks: the schema holds the shape, the constructors trust their config.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is wrong; the message names it, its value and what is allowed."""


def check(cond: bool, key: str, value: Any, allowed: str) -> None:
    """Raise ConfigError ``key = value is not allowed: allowed`` unless ``cond``."""
    if not cond:
        raise ConfigError(f"{key} = {value!r} is not allowed: {allowed}")


def at_least(section: Any, minimum: float, *names: str) -> None:
    """``check`` that each named field of ``section`` is ``>= minimum`` (numbers, or each item of a
    tuple of numbers)."""
    for name in names:
        value = getattr(section, name)
        items = value if isinstance(value, tuple) else (value,)
        kind = "an integer" if all(isinstance(v, int) for v in items) else "a number"
        kind = f"{kind}s, each" if isinstance(value, tuple) else kind
        check(all(v >= minimum for v in items), name, value, f"{kind} >= {minimum}")


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Coerce ``value`` to the annotated type ``tp``, raising ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return load_section(tp, value, where)
    if origin is Literal:
        check(value in args, where, value, "one of " + ", ".join(repr(a) for a in args))
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where)
    if origin is tuple:
        check(isinstance(value, (list, tuple)), where, value, "a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        check(len(value) == len(args), where, value, f"a list of {len(args)} values")
        return tuple(
            _convert(a, v, f"{where}[{i}]")
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if tp is float:
        check(
            isinstance(value, (int, float)) and not isinstance(value, bool),
            where,
            value,
            "a number",
        )
        return float(value)
    if tp is int:
        check(isinstance(value, int) and not isinstance(value, bool), where, value, "an integer")
        return value
    if tp is bool:
        check(isinstance(value, bool), where, value, "true or false")
        return value
    if tp is str:
        check(isinstance(value, str), where, value, "a string")
        return value
    return value


def load_section(cls: type[T], mapping: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from a plain mapping; unknown keys and bad types are errors.

    ``where`` is the dotted path of the section in the config file, used in messages.
    """
    mapping = {} if mapping is None else mapping
    prefix = f"{where}." if where else ""
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where or 'config'} = {mapping!r} is not allowed: a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - names)
    if unknown:
        raise ConfigError(
            f"unknown key {prefix}{unknown[0]} (value {mapping[unknown[0]]!r}); "
            f"allowed keys: {', '.join(sorted(names))}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in mapping.items():
        f = fields[k]
        # A partial nested section fills its gaps from the PARENT's default for that field
        # (FinetuneConfig.optim defaults to lr 0.02 / multistep, not OptimConfig's own defaults).
        if (
            dataclasses.is_dataclass(hints[k])
            and isinstance(v, Mapping)
            and f.default_factory is not dataclasses.MISSING
        ):
            v = {**_shallow_fields(f.default_factory()), **v}
        try:
            kwargs[k] = _convert(hints[k], v, f"{prefix}{k}")
        except ConfigError as err:
            hint = f.metadata.get("hint")  # a retired form of the key: say what replaces it
            if hint is None:
                raise
            raise ConfigError(f"{err} ({hint})") from None
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{prefix}{err}") from None


def _shallow_fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def to_dict(obj: Any) -> dict[str, Any]:
    """Dataclass to plain (JSON-able) dict, tuples as lists."""
    return dataclasses.asdict(obj)
