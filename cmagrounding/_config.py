"""The one ``from_dict`` rule of every typed config (dataclass) in the library.

A config read from JSON is checked the same way everywhere: it must be a JSON object, every key
must be a field of the dataclass and every field without a default must be present. Anything
else raises :class:`~cmagrounding.errors.ConfigError` naming the keys, and the value checks of
the dataclass itself (``__post_init__``) raise theirs. Unknown keys are an error, never ignored:
a misspelt setting would otherwise silently keep its default.

Private: each config's ``from_dict`` calls :func:`dataclass_from_dict`; :func:`check_int` is the one
bounded-integer check of configs (``VideoConfig``) and pretrained folders (``cmagrounding._bounds``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, TypeVar

from cmagrounding.errors import ConfigError, shorten, shorten_list

T = TypeVar("T")


def dataclass_from_dict(
    cls: type[T],
    data: Any,
    where: str | None = None,
    convert: Mapping[str, Callable[[Any], Any]] | None = None,
) -> T:
    """``cls(**data)`` after the checks of the module docstring.

    ``where`` (a file or section name) starts every message; ``convert`` maps a key to a function
    applied to its value first (e.g. JSON lists back to tuples, nested configs from their dicts).
    """
    prefix = f"{where}: " if where else ""
    name = cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix}{name} expects a JSON object, got {type(data).__name__} {shorten(data)}")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    known = {f.name for f in fields if f.init}
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        raise ConfigError(f"{prefix}unknown {name} keys {unknown}; known keys: {shorten_list(sorted(known), 40)}")
    required = [
        f.name for f in fields
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    missing = [k for k in required if k not in data]
    if missing:
        raise ConfigError(f"{prefix}{name} lacks the required key(s) {missing}")
    kwargs = dict(data)
    for key, fn in (convert or {}).items():
        if key in kwargs and kwargs[key] is not None:
            kwargs[key] = fn(kwargs[key])
    try:
        return cls(**kwargs)
    except ConfigError as e:
        if not prefix:
            raise
        raise ConfigError(f"{prefix}{e}") from e
    except (TypeError, ValueError) as e:  # a value of the wrong type deep inside a field
        raise ConfigError(f"{prefix}invalid {name}: {e}") from e


def check_int(name: str, value: Any, low: int, high: int, where: str | None = None,
              error: type[Exception] = ConfigError) -> int:
    """``value`` if it is an integer (not a float or bool) in ``[low, high]``, else ``error`` naming
    ``name`` (after ``where: `` when given) and the value; returns it as an int."""
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{prefix}{name} must be an integer, got {shorten(value)} ({type(value).__name__})")
    if not low <= value <= high:
        raise error(f"{prefix}{name}={shorten(value)} is outside the accepted range [{low}, {high}] "
                    "(docs/security.md lists the bounds)")
    return int(value)
