"""Shared machinery of the procedural phantoms: label tables, case records, geometry, rendering.

Every phantom is built in three steps:

1. a :class:`Frame` maps the pixel grid to *canonical* anatomical coordinates in millimetres
   (rotation, translation, left/right mirroring and a smooth elastic warp are applied here, so the
   anatomy code never sees them);
2. the anatomy code paints a **tissue map** on a :class:`Canvas` (``uint8``, one id per tissue,
   finer than the label map: e.g. femoral cortex and marrow are two tissues of the label
   ``femur``). The label map is ``tissue_label[tissue_map]``, so it is exact by construction;
3. :func:`render` turns the tissue map into an image: piecewise-constant tissue intensities, a
   slight Gaussian blur (partial volume at the edges only; the boundary itself never moves), an
   MR bias field, and Rician (MR) or spatially correlated Gaussian (CT) noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

GENERATOR_VERSION = "1"
GENERATOR = f"adasam.phantoms v{GENERATOR_VERSION}"

#: kind -> {structure name: label value}; 0 is background (air, CT table).
STRUCTURES: dict[str, dict[str, int]] = {
    "thigh-mri": {
        "skin": 1,
        "subcutaneous_fat": 2,
        "femur": 3,
        "vastus_lateralis": 4,
        "vastus_medialis": 5,
        "rectus_femoris": 6,
        "vastus_intermedius": 7,
        "hamstrings": 8,  # posterior compartment (biceps femoris, semi-t/-m; gastrocnemius at knee)
        "adductors": 9,  # medial compartment (adductors, gracilis, sartorius)
        "intermuscular_fat": 10,  # septa, neurovascular bundles, popliteal / Hoffa fat
        "patella": 11,
    },
    "liver-ct": {
        "body": 1,  # everything inside the body outline that has no label of its own
        "spine": 2,
        "kidney_left": 3,
        "kidney_right": 4,
        "liver": 5,  # parenchyma, intrahepatic vessels and lesions
        "spleen": 6,
        "aorta": 7,
        "lungs": 8,
    },
}

#: The structures the demo models segment.
TARGETS: dict[str, list[str]] = {
    "thigh-mri": ["vastus_lateralis", "vastus_medialis"],
    "liver-ct": ["liver"],
}

MODALITY: dict[str, str] = {"thigh-mri": "MR", "liver-ct": "CT"}
KINDS: tuple[str, ...] = tuple(STRUCTURES)
_KIND_CODE: dict[str, int] = {"thigh-mri": 1, "liver-ct": 2}

#: slices per subject ("volume"); the subject of case ``i`` is ``i // SLICES_PER_SUBJECT``.
SLICES_PER_SUBJECT = 8


@dataclass(frozen=True, eq=False)
class PhantomCase:
    """One 2D phantom slice.

    Attributes:
        case_id: unique id, ``"<kind>_s<seed>_<index:04d>"``.
        subject: subject id; :data:`SLICES_PER_SUBJECT` consecutive cases share it.
        image: float32 (H, W); MR signal in arbitrary units (about 0..1000) or CT in Hounsfield
            units (air -1000, fat about -100, soft tissue 30..60 native, bone 200..1000).
        label: uint8 (H, W) label map, values from ``STRUCTURES[kind]``, 0 = background.
        present: structure name -> True iff ``label`` has at least one pixel of it
            (every structure of ``STRUCTURES[kind]`` is a key).
        spacing: pixel spacing (row, col) in mm.
        kind: ``"thigh-mri"`` or ``"liver-ct"``.
        meta: slice metadata: ``z`` (0 = proximal/cranial end of the covered range),
            ``side`` (thigh: ``"left"``/``"right"`` leg), ``phase`` (CT: ``"native"``/
            ``"portal"``), ``empty`` (True for a background-only slice).
    """

    case_id: str
    subject: str
    image: np.ndarray
    label: np.ndarray
    present: dict[str, bool]
    spacing: tuple[float, float]
    kind: str
    meta: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class PhantomDebug:
    """What a case was rendered from, for tests and inspection.

    Attributes:
        tissue_map: uint8 (H, W) tissue ids; ``label == tissue_labels[tissue_map]``.
        tissue_names: name of each tissue id.
        tissue_labels: uint8 (T,) label value of each tissue id.
        tissue_values: float32 (T,) intensity of each tissue before blur, bias and noise
            (MR a.u. or CT HU).
        bias: float32 (H, W) multiplicative MR bias field (all ones for CT).
        noise_sigma: noise standard deviation (a.u. or HU).
        blur_sigma: Gaussian blur of the intensities, in pixels.
    """

    tissue_map: np.ndarray
    tissue_names: tuple[str, ...]
    tissue_labels: np.ndarray
    tissue_values: np.ndarray
    bias: np.ndarray
    noise_sigma: float
    blur_sigma: float


def check_kind(kind: str) -> None:
    """Raise ``ValueError`` unless ``kind`` is one of :data:`KINDS`."""
    if kind not in STRUCTURES:
        raise ValueError(f"unknown phantom kind {kind!r}; choose one of {', '.join(KINDS)}")


def rng_for(kind: str, seed: int, *path: int) -> np.random.Generator:
    """Independent, reproducible random stream for ``(kind, seed, *path)`` (subject, slice)."""
    return np.random.default_rng([_KIND_CODE[kind], int(seed), *(int(p) for p in path)])


def case_id(kind: str, seed: int, index: int) -> str:
    """Case id of case ``index`` of the stream ``(kind, seed)``."""
    return f"{kind}_s{seed}_{index:04d}"


def subject_id(kind: str, seed: int, subject: int) -> str:
    """Subject id of subject ``subject`` of the stream ``(kind, seed)``."""
    return f"{kind}_s{seed}_subj{subject:03d}"


def interp(z: float, zs: Sequence[float], vs: Sequence[float]) -> float:
    """Piecewise-linear profile ``v(z)`` through the control points (constant outside)."""
    return float(np.interp(z, zs, vs))


def harmonics(rng: np.random.Generator, amp: float, kmin: int = 2, kmax: int = 5) -> np.ndarray:
    """Random radial perturbation ``(K, 3)`` rows ``(k, a_k, phase_k)``, ``a_k ~ amp / k``."""
    ks = np.arange(kmin, kmax + 1, dtype=np.float64)
    a = amp * rng.uniform(0.3, 1.0, ks.size) / ks * kmin
    ph = rng.uniform(0.0, 2 * np.pi, ks.size)
    return np.stack([ks, a, ph], axis=1)


def radial(theta: np.ndarray, harm: np.ndarray | None) -> np.ndarray:
    """``1 + sum_k a_k cos(k theta + phase_k)`` for angles ``theta`` (radians)."""
    r = np.ones_like(theta)
    if harm is not None:
        for k, a, ph in harm:
            r += np.float32(a) * np.cos(np.float32(k) * theta + np.float32(ph))
    return r


def smooth_field(rng: np.random.Generator, n: int, nodes: int = 5) -> np.ndarray:
    """Smooth random field, float32 (n, n), about unit standard deviation (Gaussian RBF basis)."""
    centers = np.linspace(-0.15, 1.15, nodes)
    t = np.linspace(0.0, 1.0, n)
    width = centers[1] - centers[0]
    basis = np.exp(-0.5 * ((t[:, None] - centers[None, :]) / width) ** 2)
    basis /= np.sqrt((basis**2).sum(axis=1, keepdims=True))
    g = rng.standard_normal((nodes, nodes))
    return (basis @ g @ basis.T).astype(np.float32)


Window = tuple[slice, slice]


class Frame:
    """Pixel grid of one slice in canonical anatomical coordinates (mm).

    Canonical ``x``/``y`` are float32 (n, n). ``y`` grows posteriorly (image down); ``x`` is
    defined by the anatomy module (thigh: lateral; abdomen: patient left = image right) and
    ``mirror=-1`` flips it against the image columns. The pose is: image mm (origin at the image
    centre) rotated by ``angle_deg``, shifted by ``shift`` (so the anatomy's origin lands at
    ``+shift`` in the rotated frame), mirrored, then elastically warped by a smooth displacement
    of about ``warp_mm`` standard deviation.
    """

    def __init__(
        self,
        size: int,
        spacing: float,
        angle_deg: float,
        shift: tuple[float, float],
        mirror: float,
        rng: np.random.Generator,
        warp_mm: float = 0.0,
    ) -> None:
        self.size = size
        self.spacing = float(spacing)
        self.mirror = float(mirror)
        self.shift = (float(shift[0]), float(shift[1]))
        a = np.deg2rad(angle_deg)
        self._ca, self._sa = float(np.cos(a)), float(np.sin(a))
        self._c = (size - 1) / 2.0
        ax = ((np.arange(size, dtype=np.float32) - self._c) * self.spacing).astype(np.float32)
        xi, yi = ax[None, :], ax[:, None]
        ca, sa = np.float32(self._ca), np.float32(self._sa)
        x = ca * xi + sa * yi - np.float32(self.shift[0])
        y = -sa * xi + ca * yi - np.float32(self.shift[1])
        x = np.float32(self.mirror) * x
        self.warp_margin = 3.5 * warp_mm
        if warp_mm > 0:
            x = x + np.float32(warp_mm) * smooth_field(rng, size)
            y = y + np.float32(warp_mm) * smooth_field(rng, size)
        self.x: np.ndarray = np.ascontiguousarray(x, dtype=np.float32)
        self.y: np.ndarray = np.ascontiguousarray(y, dtype=np.float32)
        self.full: Window = (slice(0, size), slice(0, size))

    def to_pixel(self, cx: float, cy: float) -> tuple[float, float]:
        """Approximate (row, col) of canonical point ``(cx, cy)`` mm (ignores the warp)."""
        xr = self.mirror * cx + self.shift[0]
        yr = cy + self.shift[1]
        xi = self._ca * xr - self._sa * yr
        yi = self._sa * xr + self._ca * yr
        return yi / self.spacing + self._c, xi / self.spacing + self._c

    def window(self, cx: float, cy: float, radius: float) -> Window:
        """Pixel window that contains the canonical disc of ``radius`` mm around ``(cx, cy)``."""
        row, col = self.to_pixel(cx, cy)
        rad = (radius + self.warp_margin) / self.spacing + 2.0
        r0 = int(np.clip(np.floor(row - rad), 0, self.size))
        r1 = int(np.clip(np.ceil(row + rad) + 1, 0, self.size))
        c0 = int(np.clip(np.floor(col - rad), 0, self.size))
        c1 = int(np.clip(np.ceil(col + rad) + 1, 0, self.size))
        return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))

    def polar(
        self,
        cx: float,
        cy: float,
        a: float,
        b: float,
        angle: float = 0.0,
        harm: np.ndarray | None = None,
        win: Window | None = None,
    ) -> tuple[Window, np.ndarray, np.ndarray, np.ndarray]:
        """Star-shaped ellipse in polar form.

        The shape is ``rho < r(theta)`` with ``rho`` the elliptical radius for semi-axes ``a``,
        ``b`` (mm, rotated by ``angle`` radians) and ``r = radial(theta, harm)``.

        Returns:
            ``(win, s, theta, depth_per_s)``: the window, the normalised level ``s = rho / r``
            (< 1 inside), the angle ``theta`` and the mm per unit of ``s`` along the ray, so
            that ``(1 - s) * depth_per_s`` is the depth below the outline in mm. Arrays are
            float32 of the window's shape.
        """
        if win is None:
            rmax = max(a, b) * (1.0 + (0.0 if harm is None else float(np.abs(harm[:, 1]).sum())))
            win = self.window(cx, cy, rmax)
        x = self.x[win] - np.float32(cx)
        y = self.y[win] - np.float32(cy)
        if angle:
            c, s_ = np.float32(np.cos(angle)), np.float32(np.sin(angle))
            x, y = c * x + s_ * y, -s_ * x + c * y
        u = x / np.float32(a)
        v = y / np.float32(b)
        theta = np.arctan2(v, u)
        r = radial(theta, harm)
        s = np.sqrt(u * u + v * v) / r
        per_s = r * np.sqrt((a * np.cos(theta)) ** 2 + (b * np.sin(theta)) ** 2)
        return win, s, theta, per_s

    def star(
        self,
        cx: float,
        cy: float,
        a: float,
        b: float,
        angle: float = 0.0,
        harm: np.ndarray | None = None,
    ) -> tuple[Window, np.ndarray]:
        """Boolean mask (window-shaped) of a star-shaped ellipse; see :meth:`polar`."""
        if harm is None:
            rmax = max(a, b)
            win = self.window(cx, cy, rmax)
            x = self.x[win] - np.float32(cx)
            y = self.y[win] - np.float32(cy)
            if angle:
                c, s_ = np.float32(np.cos(angle)), np.float32(np.sin(angle))
                x, y = c * x + s_ * y, -s_ * x + c * y
            return win, (x / np.float32(a)) ** 2 + (y / np.float32(b)) ** 2 < 1.0
        win, s, _, _ = self.polar(cx, cy, a, b, angle, harm)
        return win, s < 1.0


class Canvas:
    """Tissue map under construction: tissue 0 is the background (``air``, label 0)."""

    def __init__(self, frame: Frame, structures: Mapping[str, int], air: float) -> None:
        self.frame = frame
        self.structures = structures
        self.tmap = np.zeros((frame.size, frame.size), dtype=np.uint8)
        self.names: list[str] = ["air"]
        self.labels: list[int] = [0]
        self.values: list[float] = [float(air)]
        self._ids: dict[str, int] = {"air": 0}

    def tissue(self, name: str, label: str | None, value: float) -> int:
        """Register (once) tissue ``name`` of structure ``label`` (None = background)."""
        if name in self._ids:
            return self._ids[name]
        self._ids[name] = len(self.names)
        self.names.append(name)
        self.labels.append(0 if label is None else self.structures[label])
        self.values.append(float(value))
        return self._ids[name]

    def ids(self, *names: str) -> list[int]:
        """Ids of already registered tissues (unknown names are skipped)."""
        return [self._ids[n] for n in names if n in self._ids]

    def paint(
        self, tid: int, win: Window, mask: np.ndarray, only: Sequence[int] | None = None
    ) -> None:
        """Set ``tissue_map[win][mask] = tid``, only over tissues ``only`` when given."""
        sub = self.tmap[win]
        if only is not None:
            mask = mask & np.isin(sub, np.asarray(only, dtype=np.uint8))
        sub[mask] = tid


def poly_bias(rng: np.random.Generator, n: int, amp: float) -> np.ndarray:
    """Smooth multiplicative MR bias field, float32 (n, n), ``exp`` of a random quadratic.

    The log-field's extreme values are about ``+-amp`` over the image.
    """
    t = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    px = np.stack([np.ones_like(t), t, 1.5 * t * t - 0.5])
    c = rng.normal(0.0, 1.0, (3, 3))
    c[0, 0] = 0.0
    c /= np.abs(c).sum() + 1e-9
    log_field = px.T @ c.astype(np.float32) @ px
    return np.exp(np.float32(amp) * log_field).astype(np.float32)


def render(
    canvas: Canvas,
    modality: str,
    rng: np.random.Generator,
    blur_sigma: float,
    noise_sigma: float,
    bias_amp: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, PhantomDebug]:
    """Render the canvas.

    Returns:
        ``(image, label, debug)``: float32 (H, W) image (MR a.u., or CT HU clipped to
        [-1024, 3071]), uint8 (H, W) label map, and the :class:`PhantomDebug` record.
    """
    n = canvas.frame.size
    values = np.asarray(canvas.values, dtype=np.float32)
    lut = np.asarray(canvas.labels, dtype=np.uint8)
    tmap = canvas.tmap
    img = values[tmap]
    if blur_sigma > 0:
        img = ndimage.gaussian_filter(img, blur_sigma, mode="nearest")
    if modality == "MR":
        bias = poly_bias(rng, n, bias_amp)
        img = img * bias
        n1 = rng.standard_normal((n, n), dtype=np.float32)
        n2 = rng.standard_normal((n, n), dtype=np.float32)
        sig = np.float32(noise_sigma)
        img = np.sqrt((img + sig * n1) ** 2 + (sig * n2) ** 2)
    else:
        bias = np.ones((n, n), dtype=np.float32)
        noise = ndimage.gaussian_filter(rng.standard_normal((n, n), dtype=np.float32), 0.6)
        noise *= np.float32(noise_sigma) / np.float32(max(float(noise.std()), 1e-6))
        img = np.clip(img + noise, -1024.0, 3071.0)
    debug = PhantomDebug(
        tissue_map=tmap,
        tissue_names=tuple(canvas.names),
        tissue_labels=lut,
        tissue_values=values,
        bias=bias,
        noise_sigma=float(noise_sigma),
        blur_sigma=float(blur_sigma),
    )
    return img.astype(np.float32, copy=False), lut[tmap], debug


def presence(label: np.ndarray, structures: Mapping[str, int]) -> dict[str, bool]:
    """Image-level labels: structure name -> True iff ``label`` contains its value."""
    counts = np.bincount(label.ravel(), minlength=256)
    return {name: bool(counts[value] > 0) for name, value in structures.items()}
