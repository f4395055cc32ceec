"""Hugging Face ZeroGPU: wrap model calls with ``spaces.GPU`` when the ``spaces`` package exists.

On a ZeroGPU Space a GPU is attached only while a function decorated with ``spaces.GPU`` runs;
elsewhere (no ``spaces`` package) :func:`gpu` returns the function itself, unchanged, so the
wrapper costs nothing on a laptop, in CI or on a plain GPU server.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


def spaces_module() -> object | None:
    """The ``spaces`` package, or ``None`` when it is not installed."""
    try:
        return importlib.import_module("spaces")
    except ImportError:
        return None


def gpu(fn: F, duration: int = 60) -> F:
    """``spaces.GPU(duration=…)(fn)`` on a Space with the ``spaces`` package, else ``fn``.

    Args:
        fn: a function that runs model calls (the encoder, the classifier).
        duration: the longest GPU time in seconds one call may need (ZeroGPU's quota unit).
    """
    spaces = spaces_module()
    if spaces is None:
        return fn
    return spaces.GPU(duration=duration)(fn)  # type: ignore[attr-defined,no-any-return]
