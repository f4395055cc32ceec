"""The case streams: ``generate(kind, n, seed)`` and single-case access."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ._core import PhantomCase, PhantomDebug, check_kind
from .abdomen import render_abdomen
from .thigh import render_thigh

_RENDERERS: dict[str, Callable[[int, int, int], tuple[PhantomCase, PhantomDebug]]] = {
    "thigh-mri": render_thigh,
    "liver-ct": render_abdomen,
}


def _check(seed: int, size: int) -> None:
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not 64 <= int(size) <= 2048:
        raise ValueError(f"size must be between 64 and 2048 pixels, got {size}")


def generate_case(
    kind: str, seed: int, index: int, size: int = 256
) -> tuple[PhantomCase, PhantomDebug]:
    """Case ``index`` of the stream ``(kind, seed, size)`` and what it was rendered from.

    Case ``index`` does not depend on how many cases are generated: ``generate(kind, 10, s)``
    is a prefix of ``generate(kind, 20, s)``.
    """
    check_kind(kind)
    _check(seed, size)
    if int(index) < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    return _RENDERERS[kind](int(seed), int(index), int(size))


def generate(kind: str, n: int, seed: int, size: int = 256) -> Iterator[PhantomCase]:
    """``n`` phantom cases of ``kind``; deterministic for ``(kind, n, seed, size)``.

    Cases come subject by subject (``SLICES_PER_SUBJECT`` slices each, from the proximal or
    cranial end of the covered range to the distal or caudal end). Images are float32
    ``(size, size)``; see :class:`PhantomCase`.
    """
    check_kind(kind)
    _check(seed, size)
    if int(n) < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    render = _RENDERERS[kind]
    for index in range(int(n)):
        yield render(int(seed), index, int(size))[0]
