"""Checking settings, whoever gives them (the Python API or the command line).

Each function takes the setting's library name and its value, and returns the value in its
one canonical form, or raises `OptionError` naming the setting and saying what is allowed. A
value of the wrong type is refused, never coerced: ``'no'`` is not False, ``'0.5'`` is not a
number, ``1.5`` is not a count, ``'person'`` is not a list of letters.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Collection, Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np

from yolocli.errors import OptionError

# Engine threads, or worker processes, per core at most: more only queue for the same cores
# (the audit's --threads 1000 ran for minutes, deaf to SIGTERM; -j 99999 began launching).
PER_CORE = 4


def per_core(option: str, value: object, what: str) -> int:
    """A count of threads or processes: 1 to `PER_CORE` per core of this machine."""
    cores = os.cpu_count() or 1
    count = integer(option, value, 1)
    if count > PER_CORE * cores:
        raise OptionError(
            option,
            f"{count} {what} on {cores} cores: at most {PER_CORE * cores} (more only "
            "queue for the same cores)",
        )
    return count


def _got(value: object) -> str:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:40] + "..."
    return f"{shown} (a {type(value).__name__})"


def boolean(option: str, value: object) -> bool:
    """True or False (NumPy's bools too); nothing else, not even 0 or 'no'."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise OptionError(option, f"must be True or False, got {_got(value)}")


def integer(option: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """A whole number (Python's or NumPy's, not a bool or a float) in [low, high]."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, Integral):
        raise OptionError(option, f"must be a whole number, got {_got(value)}")
    number = int(value)
    _in_range(option, number, low, high)
    return number


def number(option: str, value: object, low: float, high: float) -> float:
    """A finite real number (not a bool, not a string) in [low, high]."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise OptionError(option, f"must be a number, got {_got(value)}")
    result = float(value)
    if not math.isfinite(result):
        raise OptionError(option, f"must be a finite number, got {result}")
    _in_range(option, result, low, high)
    return result


def _in_range(option: str, value: float, low: float | None, high: float | None) -> None:
    if low is not None and high is not None and not low <= value <= high:
        raise OptionError(option, f"must be in [{low:g}, {high:g}], got {value:g}")
    if low is not None and value < low:
        raise OptionError(option, f"must be >= {low:g}, got {value:g}")
    if high is not None and value > high:
        raise OptionError(option, f"must be <= {high:g}, got {value:g}")


def choice(option: str, value: object, choices: Collection[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise OptionError(option, f"must be one of {', '.join(choices)}, got {_got(value)}")
    return value


def name(option: str, value: object) -> str:
    """A non-empty string (a model name, say): '' is an error, never "the default"."""
    if not isinstance(value, str):
        raise OptionError(option, f"must be a name (a str), got {_got(value)}")
    if not value.strip():
        raise OptionError(option, "is empty: give a name, or None for the default")
    return value


def path(option: str, value: object) -> str | os.PathLike[str]:
    """A non-empty path (str or os.PathLike)."""
    if not isinstance(value, str | os.PathLike):
        raise OptionError(option, f"must be a path (a str or Path), got {_got(value)}")
    if not os.fspath(value).strip():
        raise OptionError(option, "is empty: give a file")
    return value


def names(option: str, value: object) -> tuple[int | str, ...]:
    """Class names or ids: a sequence of them, or one string of comma-separated ones (as the
    command line takes them: ``'person,car'``, ``'0,2'``)."""
    if isinstance(value, str):
        items: list[object] = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        raise OptionError(option, f"must be a list of class names or ids, got {_got(value)}")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | Integral):
            raise OptionError(option, f"each class is a name or an id, got {_got(item)}")
        if isinstance(item, str) and not item.strip():
            raise OptionError(option, "a class name is empty")
    return tuple(int(i) if isinstance(i, Integral) else str(i).strip() for i in items)


_SIZE = re.compile(r"\s*(\d{1,6})\s*(?:[xX]\s*(\d{1,6})\s*)?")


def size(option: str, value: object, multiple: int, largest: int) -> tuple[int, int]:
    """A network or tile size as (width, height): an int (square), a (width, height) pair, or
    text ``'640'`` / ``'640x384'``; each side a multiple of ``multiple`` up to ``largest``."""
    sides: tuple[object, ...]
    if isinstance(value, str):
        found = _SIZE.fullmatch(value)
        if found is None:
            raise OptionError(option, f"{value!r} is not a size like 416 or 640x384")
        sides = (int(found[1]), int(found[2] or found[1]))
    elif isinstance(value, tuple | list):
        sides = tuple(value)
    else:
        sides = (value, value)
    if len(sides) != 2:
        raise OptionError(option, f"must be one side or (width, height), got {_got(value)}")
    w, h = (integer(option, side) for side in sides)
    for side in (w, h):
        if not (multiple <= side <= largest and side % multiple == 0):
            raise OptionError(
                option,
                f"each side must be a multiple of {multiple} from {multiple} to {largest} "
                f"(320, 416, 608 or 640x384), not {side}",
            )
    return w, h


def thresholds(option: str, value: object) -> tuple[float, dict[str, float]]:
    """``'0.25,person=0.5,car=0.3'``: a default threshold, then per-class ones by class name
    or id (the default may be left out: ``'person=0.5'`` keeps the given ``default``).
    Returns (the default or NaN when not given, {class: threshold})."""
    if not isinstance(value, str):
        raise OptionError(option, f"must be text like 0.25,person=0.5, got {_got(value)}")
    default = math.nan
    per_class: dict[str, float] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        key, eq, text = part.rpartition("=")
        try:
            threshold = float(text)
        except ValueError:
            raise OptionError(
                option, f"{part!r}: give a number, or class=number (0.25,person=0.5)"
            ) from None
        threshold = number(option, threshold, 0.0, 1.0)
        if not eq:
            if not math.isnan(default):
                raise OptionError(option, f"two default thresholds in {value!r}")
            default = threshold
        elif not key.strip():
            raise OptionError(option, f"{part!r}: a class name is missing before '='")
        else:
            per_class[key.strip()] = threshold
    if math.isnan(default) and not per_class:
        raise OptionError(option, "is empty")
    return default, per_class


def class_thresholds(option: str, value: object) -> tuple[tuple[int | str, float], ...]:
    """Per-class thresholds as ((class name or id, threshold), ...), from a mapping."""
    if not isinstance(value, Mapping):
        raise OptionError(option, f"must map class names or ids to thresholds, got {_got(value)}")
    pairs: list[tuple[int | str, float]] = []
    for key, threshold in value.items():
        found = names(option, [key])
        if len(found) != 1 or (isinstance(key, str) and "," in key):
            raise OptionError(option, f"each key is one class name or id, got {_got(key)}")
        (cls,) = found
        pairs.append((cls, number(f"{option}[{key!r}]", threshold, 0.0, 1.0)))
    return tuple(pairs)


def anything(option: str, value: Any, kind: type) -> Any:
    """``value`` if it is a ``kind`` (an object the caller made, e.g. a Store)."""
    if not isinstance(value, kind):
        raise OptionError(option, f"must be a {kind.__name__}, got {_got(value)}")
    return value
