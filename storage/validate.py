"""Argument checks shared by the repository functions (each raises InvalidInputError)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from storage.errors import InvalidInputError


def text(value: object, what: str, *, max_length: int, allow_empty: bool = False) -> str:
    """A string of at most ``max_length`` characters (stripped), non-empty unless allowed."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value and not allow_empty:
        raise InvalidInputError(f"{what} must not be empty")
    if len(value) > max_length:
        raise InvalidInputError(f"{what} is {len(value)} characters long; at most {max_length}")
    return value


def finite(value: object, what: str) -> float:
    """A finite real number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)  # type: ignore[arg-type]  # numpy scalars
        except (TypeError, ValueError):
            raise InvalidInputError(f"{what} must be a number, got {value!r}") from None
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInputError(f"{what} must be finite, got {number}")
    return number


def optional_finite(value: object, what: str) -> float | None:
    """``None`` or a finite number."""
    return None if value is None else finite(value, what)


def bounded(value: object, what: str, low: float, high: float) -> float:
    """A finite number in ``[low, high]``."""
    number = finite(value, what)
    if not low <= number <= high:
        raise InvalidInputError(f"{what} must be between {low} and {high}, got {number}")
    return number


def non_negative_int(value: object, what: str) -> int:
    """An integer >= 0 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if hasattr(value, "__index__") and not isinstance(value, bool):
            value = int(value)  # type: ignore[call-overload,unused-ignore]  # numpy ints
        else:
            raise InvalidInputError(f"{what} must be an integer, got {value!r}")
    if value < 0:
        raise InvalidInputError(f"{what} must be >= 0, got {value}")
    return int(value)


def number_list(value: object, what: str, lengths: tuple[int, ...]) -> list[float] | None:
    """``None`` or a list of finite numbers whose length is one of ``lengths``."""
    if value is None:
        return None
    if isinstance(value, str | bytes | Mapping):
        raise InvalidInputError(f"{what} must be a sequence of numbers, got {value!r}")
    try:
        items = list(value)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidInputError(f"{what} must be a sequence of numbers, got {value!r}") from None
    if len(items) not in lengths:
        raise InvalidInputError(f"{what} must hold {' or '.join(map(str, lengths))} numbers")
    return [finite(item, f"{what}[{i}]") for i, item in enumerate(items)]


def json_object(value: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """A JSON-serialisable dict (``None`` gives an empty one)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a mapping, got {type(value).__name__}")
    try:
        result: dict[str, Any] = json.loads(
            json.dumps(dict(value), allow_nan=False, default=_json_default)
        )
        return result
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"{what} is not JSON-serialisable: {error}") from None


def _json_default(value: object) -> object:
    # numpy scalars and arrays
    if hasattr(value, "tolist"):
        return value.tolist()  # type: ignore[attr-defined,unused-ignore]
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def seconds_map(value: Mapping[str, Any] | None, what: str) -> dict[str, float]:
    """A ``name -> seconds`` mapping of non-negative finite numbers."""
    result: dict[str, float] = {}
    for key, item in (value or {}).items():
        seconds = finite(item, f"{what}[{key!r}]")
        if seconds < 0:
            raise InvalidInputError(f"{what}[{key!r}] must be >= 0 seconds, got {seconds}")
        result[text(key, f"{what} key", max_length=64)] = seconds
    return result
