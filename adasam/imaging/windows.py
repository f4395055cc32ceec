"""Display windows: map physical values (HU, arbitrary units) to 8-bit grey levels.

A window is a level (centre) and a width in the units of the pixels. Values at or below
``level - width/2`` map to 0, values at or above ``level + width/2`` map to 255, and values in
between map linearly, rounded to the nearest integer (ties to even)::

    display = rint(clip((value - (level - width / 2)) / width, 0, 1) * 255)

So the liver window L40/W400 maps -160 HU to 0, 240 HU to 255 and 40 HU to 128. DICOM's own
"LINEAR" window function differs from this by half a grey level at most; one formula everywhere
keeps presets, file windows and the UI's level/width sliders consistent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from adasam.errors import IngestError

AUTO = "auto"
"""Name of the data-driven window: the 0.5th to the 99.5th percentile of the pixel values."""

AUTO_PERCENTILES: tuple[float, float] = (0.5, 99.5)

_AUTO_SAMPLE_LIMIT = 4_000_000
"""Above this many pixels the auto window's percentiles are taken on a regular subsample."""


@dataclass(frozen=True)
class Window:
    """A display window in the physical units of the pixels.

    Attributes:
        level: centre of the window (for CT: HU). Finite.
        width: width of the window, in the same units. Finite and > 0.
        name: preset name (``"ct-abdomen"`` ...), ``"auto"``, ``"dicom"`` (the file's own window),
            ``"dicom-voi-lut"`` (the input range of the file's VOI LUT) or ``"custom"``.

    Raises:
        IngestError: when ``level`` is not finite or ``width`` is not a finite number > 0.
    """

    level: float
    width: float
    name: str = "custom"

    def __post_init__(self) -> None:
        try:
            level = float(self.level)
            width = float(self.width)
        except (TypeError, ValueError) as exc:
            raise IngestError(
                f"A display window needs numbers for its level and width, got "
                f"level={self.level!r} and width={self.width!r}."
            ) from exc
        if not math.isfinite(level):
            raise IngestError(f"The window level must be a finite number, got {self.level!r}.")
        if not (math.isfinite(width) and width > 0):
            raise IngestError(f"The window width must be a number above 0, got {self.width!r}.")
        object.__setattr__(self, "level", level)
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "name", str(self.name))

    @property
    def low(self) -> float:
        """The value shown black (0): ``level - width / 2``."""
        return self.level - self.width / 2.0

    @property
    def high(self) -> float:
        """The value shown white (255): ``level + width / 2``."""
        return self.level + self.width / 2.0


WINDOW_PRESETS: dict[str, Window] = {
    "ct-abdomen": Window(40.0, 400.0, "ct-abdomen"),
    "ct-liver": Window(40.0, 400.0, "ct-liver"),
    "ct-bone": Window(400.0, 1800.0, "ct-bone"),
    "ct-lung": Window(-600.0, 1500.0, "ct-lung"),
    "ct-brain": Window(40.0, 80.0, "ct-brain"),
    "ct-mediastinum": Window(50.0, 350.0, "ct-mediastinum"),
}
"""Standard CT windows in HU (level, width). ``"ct-liver"`` is L40/W400 like ``"ct-abdomen"``
(the window of the SAM-Mix reference on LiTS). ``"auto"`` is not here: it depends on the data."""

WINDOW_CHOICES: tuple[str, ...] = (AUTO, *WINDOW_PRESETS)
"""Every window name :func:`resolve_window` accepts, for a UI drop-down."""


def auto_window(values: np.ndarray) -> Window:
    """The percentile window of ``values``: from the 0.5th to the 99.5th percentile.

    Args:
        values: array of finite numbers, any shape, at least one element. Arrays of more than
            4 million elements are subsampled regularly (every k-th value) for speed.

    Returns:
        ``Window(name="auto")``. A constant image gets width 1 centred on its value (it then
        shows mid-grey).
    """
    flat = np.asarray(values).reshape(-1)
    if flat.size == 0:
        raise IngestError("Cannot compute a display window for an empty image.")
    if flat.size > _AUTO_SAMPLE_LIMIT:
        flat = flat[:: math.ceil(flat.size / _AUTO_SAMPLE_LIMIT)]
    lo, hi = (float(v) for v in np.percentile(flat, AUTO_PERCENTILES))
    if not hi > lo:
        return Window(level=lo, width=1.0, name=AUTO)
    return Window(level=(lo + hi) / 2.0, width=hi - lo, name=AUTO)


def resolve_window(spec: str | Window, values: np.ndarray) -> Window:
    """Turn a window request into a concrete :class:`Window`.

    Args:
        spec: a :class:`Window`, a preset name from :data:`WINDOW_PRESETS` or ``"auto"``
            (case-insensitive; ``_`` and spaces count as ``-``).
        values: the pixel values, used only by ``"auto"``.

    Raises:
        IngestError: for an unknown preset name.
    """
    if isinstance(spec, Window):
        return spec
    if not isinstance(spec, str):
        raise IngestError(f"A window must be a preset name or a Window, got {type(spec).__name__}.")
    key = spec.strip().lower().replace("_", "-").replace(" ", "-")
    if key == AUTO:
        return auto_window(values)
    if key in WINDOW_PRESETS:
        return WINDOW_PRESETS[key]
    raise IngestError(
        f"Unknown display window {spec!r}. Choose one of: {', '.join(WINDOW_CHOICES)}."
    )


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Window ``values`` to 8-bit grey levels.

    Args:
        values: numbers of any shape and real dtype (finite).
        window: the window; see the module docstring for the formula.

    Returns:
        uint8 array of the same shape, values 0..255.
    """
    scaled = np.subtract(np.asarray(values, dtype=np.float32), np.float32(window.low))
    scaled /= np.float32(window.width)
    np.clip(scaled, 0.0, 1.0, out=scaled)
    scaled *= np.float32(255.0)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint8)


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """Repeat a uint8 (H, W) image into three equal channels: uint8 (H, W, 3), C-contiguous."""
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
