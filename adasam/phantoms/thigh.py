"""Axial T1-weighted MRI of one thigh, from below the hip (z = 0) to the knee (z = 1.12).

Canonical frame (mm): origin at the limb centre, ``x`` grows laterally, ``y`` posteriorly. The
image follows the radiological convention (viewed from the feet, anterior up): a right leg has
its lateral side on the image left (``mirror = -1``), a left leg on the image right.

Anatomy along z (after real thigh anatomy, simplified):

- vastus lateralis: z < 0.93, large proximally and mid-thigh, tapering distally;
- vastus medialis: from z = 0.32 (tiny) to 1.02, the large anteromedial teardrop distally;
- rectus femoris anterior to z = 0.88, vastus intermedius wrapping the femur to z = 0.95;
- adductors (medial) shrinking distally, hamstrings posterior throughout;
- z > 1.0: knee (femoral condyles, patella, popliteal fat, gastrocnemius heads): no target.

About 3% of slices are background only (outside the coil / body).

Muscles are a multiplicatively weighted Voronoi partition of the sub-fascial region, one seed
per muscle belly; where the two nearest seeds nearly tie, a 1-1.6 mm fat septum separates them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._core import (
    SLICES_PER_SUBJECT,
    STRUCTURES,
    Canvas,
    Frame,
    PhantomCase,
    PhantomDebug,
    case_id,
    harmonics,
    interp,
    presence,
    radial,
    render,
    rng_for,
    subject_id,
)

KIND = "thigh-mri"
FOV_MM = 230.0  # fixed field of view: pixel spacing is FOV_MM / size for the whole dataset
Z_RANGE = (0.0, 1.12)
EMPTY_PROBABILITY = 0.03


@dataclass(frozen=True)
class _Seed:
    """A muscle belly: label, and z-profiles of its centre (fractions of the limb semi-axes
    ``A``, ``B``) and radius (fraction of ``A``); ``aniso`` stretches its metric (x, y)."""

    label: str
    zs: tuple[float, ...]
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    ws: tuple[float, ...]
    aniso: tuple[float, float] = (1.0, 1.0)


_SEEDS: tuple[_Seed, ...] = (
    _Seed(
        "vastus_lateralis",
        (0.0, 0.5, 0.8, 0.9, 0.93, 0.935),
        (0.62, 0.62, 0.58, 0.52, 0.5, 0.5),
        (-0.02, -0.05, -0.15, -0.25, -0.28, -0.28),
        (0.62, 0.62, 0.5, 0.22, 0.08, 0.0),
        (0.65, 1.0),
    ),
    _Seed(
        "vastus_medialis",
        (0.32, 0.33, 0.45, 0.7, 0.92, 1.0, 1.02, 1.025),
        (-0.38, -0.38, -0.42, -0.45, -0.42, -0.35, -0.3, -0.3),
        (-0.42, -0.42, -0.4, -0.35, -0.25, -0.35, -0.4, -0.4),
        (0.0, 0.05, 0.2, 0.42, 0.55, 0.3, 0.1, 0.0),
        (1.0, 0.9),
    ),
    _Seed(
        "rectus_femoris",
        (0.0, 0.6, 0.8, 0.87, 0.88),
        (0.05, 0.02, 0.0, 0.0, 0.0),
        (-0.72, -0.72, -0.74, -0.78, -0.78),
        (0.32, 0.3, 0.18, 0.05, 0.0),
        (1.0, 0.75),
    ),
    _Seed(  # sartorius
        "adductors",
        (0.0, 0.5, 0.9, 1.12),
        (-0.2, -0.55, -0.72, -0.68),
        (-0.8, -0.45, 0.0, 0.25),
        (0.17, 0.17, 0.16, 0.12),
    ),
    _Seed(  # adductor longus / brevis
        "adductors",
        (0.0, 0.45, 0.55, 0.56),
        (-0.5, -0.5, -0.45, -0.45),
        (-0.2, -0.12, -0.08, -0.08),
        (0.36, 0.22, 0.05, 0.0),
    ),
    _Seed(  # adductor magnus
        "adductors",
        (0.0, 0.5, 0.8, 0.9, 0.91),
        (-0.42, -0.4, -0.32, -0.25, -0.25),
        (0.25, 0.25, 0.32, 0.38, 0.38),
        (0.44, 0.4, 0.22, 0.05, 0.0),
    ),
    _Seed(  # gracilis
        "adductors",
        (0.0, 0.6, 1.12),
        (-0.85, -0.82, -0.72),
        (0.18, 0.3, 0.45),
        (0.16, 0.14, 0.1),
    ),
    _Seed(  # biceps femoris
        "hamstrings",
        (0.0, 0.5, 1.0, 1.12),
        (0.42, 0.42, 0.5, 0.55),
        (0.6, 0.6, 0.55, 0.5),
        (0.42, 0.44, 0.32, 0.18),
    ),
    _Seed(  # semitendinosus
        "hamstrings",
        (0.0, 0.5, 1.0, 1.12),
        (0.0, -0.05, -0.3, -0.4),
        (0.76, 0.75, 0.72, 0.68),
        (0.36, 0.34, 0.14, 0.08),
    ),
    _Seed(  # semimembranosus
        "hamstrings",
        (0.0, 0.5, 0.8, 1.0, 1.12),
        (-0.22, -0.25, -0.3, -0.4, -0.42),
        (0.6, 0.6, 0.6, 0.55, 0.5),
        (0.26, 0.32, 0.38, 0.24, 0.12),
    ),
    _Seed(  # gastrocnemius, medial head
        "hamstrings",
        (1.0, 1.03, 1.12),
        (-0.35, -0.35, -0.35),
        (0.6, 0.58, 0.55),
        (0.0, 0.12, 0.28),
    ),
    _Seed(  # gastrocnemius, lateral head
        "hamstrings",
        (1.0, 1.04, 1.12),
        (0.32, 0.32, 0.3),
        (0.6, 0.58, 0.55),
        (0.0, 0.1, 0.24),
    ),
)
_MUSCLES = ("vastus_lateralis", "vastus_medialis", "rectus_femoris", "vastus_intermedius")
_MUSCLES += ("adductors", "hamstrings")


@dataclass(frozen=True)
class _Subject:
    """Per-subject (per-volume) parameters, drawn once from the subject's random stream."""

    mirror: float  # -1: right leg (lateral = image left), +1: left leg
    fov: float  # mm
    a0: float  # limb semi-axis, medial-lateral, mid-thigh (mm)
    b0: float  # limb semi-axis, anterior-posterior (mm)
    limb_harm: np.ndarray
    fat_t0: float  # mean subcutaneous fat thickness (mm)
    fat_phase: float
    fat_harm: np.ndarray
    skin_t: float
    septum: float  # fat septum thickness (mm)
    femur_xy: tuple[float, float]  # fractions of (A, B)
    femur_r: float  # mm, mid-shaft
    cortex: float  # mm, mid-shaft
    seed_jitter: np.ndarray  # (S, 2) fractions
    seed_scale: np.ndarray  # (S,)
    seed_harm: np.ndarray  # (S, K, 3) outline perturbation of each belly
    vi_scale: float
    values: dict[str, float]
    noise: float
    bias_amp: float
    blur: float
    angle: float  # deg
    shift: tuple[float, float]  # mm


def _subject(rng: np.random.Generator) -> _Subject:
    a0 = rng.uniform(58.0, 80.0)
    b0 = a0 * rng.uniform(0.84, 1.0)
    limb_harm = harmonics(rng, 0.035, 2, 5)
    fov = FOV_MM
    gain = rng.uniform(0.8, 1.2)
    fat = rng.uniform(760.0, 900.0)
    muscle = rng.uniform(250.0, 350.0)
    values = {
        "skin": rng.uniform(340.0, 500.0),
        "subcutaneous_fat": fat,
        "intermuscular_fat": fat * rng.uniform(0.88, 0.97),
        "cortex": rng.uniform(15.0, 40.0),
        "marrow": rng.uniform(560.0, 760.0),
        "vessel": rng.uniform(20.0, 70.0),
    }
    for m in _MUSCLES:
        values[m] = muscle * rng.uniform(0.94, 1.06)
    values = {k: float(v * gain) for k, v in values.items()}
    half = 0.045 * fov
    return _Subject(
        mirror=float(rng.choice([-1.0, 1.0])),
        fov=float(fov),
        a0=float(a0),
        b0=float(b0),
        limb_harm=limb_harm,
        fat_t0=float(rng.uniform(4.0, 20.0)),
        fat_phase=float(2.68 + rng.normal(0.0, 0.4)),
        fat_harm=harmonics(rng, 0.15, 2, 4),
        skin_t=float(rng.uniform(1.3, 2.2)),
        septum=float(rng.uniform(1.0, 1.6)),
        femur_xy=(float(rng.uniform(-0.04, 0.1)), float(rng.uniform(-0.1, 0.06))),
        femur_r=float(rng.uniform(11.5, 14.5)),
        cortex=float(rng.uniform(4.5, 6.5)),
        seed_jitter=rng.normal(0.0, 0.04, (len(_SEEDS), 2)),
        seed_scale=rng.uniform(0.88, 1.12, len(_SEEDS)),
        seed_harm=np.stack([harmonics(rng, 0.07, 2, 4) for _ in _SEEDS]),
        vi_scale=float(rng.uniform(0.85, 1.15)),
        values=values,
        noise=float(rng.uniform(5.0, 18.0) * gain),
        bias_amp=float(rng.uniform(0.08, 0.3)),
        blur=float(rng.uniform(0.45, 0.8)),
        angle=float(rng.uniform(-12.0, 12.0)),
        shift=(float(rng.uniform(-half, half)), float(rng.uniform(-half, half))),
    )


def _smoothstep(z: float, a: float, b: float) -> float:
    t = min(max((z - a) / (b - a), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def _paint_muscles(
    canvas: Canvas,
    subj: _Subject,
    z: float,
    region: np.ndarray,
    big_a: float,
    big_b: float,
    femur: tuple[float, float, float, float],
) -> None:
    """Partition the sub-fascial ``region`` (bool (n, n)) into muscle bellies and fat."""
    frame = canvas.frame
    idx = np.flatnonzero(region)
    if idx.size == 0:
        return
    x = frame.x.ravel()[idx]
    y = frame.y.ravel()[idx]
    dists: list[np.ndarray] = []
    radii: list[float] = []
    tissues: list[int] = []
    for k, seed in enumerate(_SEEDS):
        w = interp(z, seed.zs, seed.ws) * subj.seed_scale[k]
        if w <= 0.005:
            continue
        cx = (interp(z, seed.zs, seed.xs) + subj.seed_jitter[k, 0]) * big_a
        cy = (interp(z, seed.zs, seed.ys) + subj.seed_jitter[k, 1]) * big_b
        r = w * big_a
        ax, ay = seed.aniso
        dx, dy = (x - cx) / np.float32(ax), (y - cy) / np.float32(ay)
        shape = radial(np.arctan2(dy, dx), subj.seed_harm[k])
        dists.append(np.hypot(dx, dy) / (np.float32(r) * shape))
        radii.append(r)
        tissues.append(canvas.tissue(seed.label, seed.label, subj.values[seed.label]))
    # vastus intermedius: distance from the femoral surface, favoured anterolaterally
    w_vi = interp(z, (0.0, 0.5, 0.85, 0.95, 0.955), (0.24, 0.28, 0.24, 0.05, 0.0))
    if w_vi > 0:
        fx, fy, frx, fry = femur
        dx, dy = x - fx, y - fy
        rad = np.hypot(dx / frx, dy / fry)
        surface = np.maximum(rad - 1.0, 0.0) * np.float32(min(frx, fry))
        ang = np.arctan2(dy, dx)  # anterior = -pi/2, lateral = 0
        pref = 0.5 + 0.5 * np.cos(ang + np.float32(1.1))
        r = np.float32(w_vi * subj.vi_scale * big_a)
        dists.append((surface + (1.0 - pref) * r) / (r * (0.25 + 0.75 * pref)))
        radii.append(r)
        label = "vastus_intermedius"
        tissues.append(canvas.tissue(label, label, subj.values[label]))
    if not dists:
        return
    fat = canvas.tissue("intermuscular_fat", "intermuscular_fat", subj.values["intermuscular_fat"])
    d = np.stack(dists)
    out = np.full(idx.size, fat, dtype=np.uint8)
    if len(dists) == 1:
        best = np.zeros(idx.size, dtype=np.intp)
        keep = d[0] < 1.0
    else:
        order = np.argpartition(d, 1, axis=0)[:2]
        best, second = order[0], order[1]
        d1 = np.take_along_axis(d, order[:1], axis=0)[0]
        d2 = np.take_along_axis(d, order[1:2], axis=0)[0]
        rr = np.asarray(radii, dtype=np.float32)
        gap_mm = (d2 - d1) / (1.0 / rr[best] + 1.0 / rr[second])
        keep = (d1 < 1.0) & ((gap_mm > subj.septum / 2.0) | (d2 > 1.0))
    out[keep] = np.asarray(tissues, dtype=np.uint8)[best[keep]]
    canvas.tmap.ravel()[idx] = out


def _femur_shape(
    frame: Frame, subj: _Subject, z: float, big_a: float, big_b: float
) -> tuple[tuple[float, float, float, float], np.ndarray, np.ndarray]:
    """Femur outline and marrow, bool (n, n) each, plus ``(cx, cy, rx, ry)`` in mm."""
    cx = subj.femur_xy[0] * big_a
    cy = (subj.femur_xy[1] + 0.08 * _smoothstep(z, 0.6, 1.0)) * big_b
    widen = 1.0 + 1.25 * _smoothstep(z, 0.75, 1.04) + 0.15 * (1.0 - _smoothstep(z, 0.0, 0.2))
    rx = subj.femur_r * widen
    ry = subj.femur_r * (1.0 + 0.7 * _smoothstep(z, 0.75, 1.04))
    cortex = subj.cortex * interp(z, (0.0, 0.15, 0.6, 0.85, 1.0), (0.55, 1.0, 1.0, 0.45, 0.3))
    n = frame.size
    outer = np.zeros((n, n), dtype=bool)
    inner = np.zeros((n, n), dtype=bool)
    if z <= 1.0:
        for arr, shrink in ((outer, 0.0), (inner, cortex)):
            win, m = frame.star(cx, cy, rx - shrink, ry - shrink)
            arr[win] |= m
        return (cx, cy, rx, ry), outer, inner
    # knee: two condyles, the trochlea in front and the intercondylar notch behind
    t = _smoothstep(z, 1.0, 1.06)
    parts = (
        (cx - 0.45 * rx, cy + 0.12 * ry, 0.55 * rx * (1 + 0.15 * t), 0.8 * ry * (1 + 0.2 * t)),
        (cx + 0.45 * rx, cy + 0.12 * ry, 0.55 * rx * (1 + 0.15 * t), 0.8 * ry * (1 + 0.2 * t)),
        (cx, cy - 0.15 * ry, 0.95 * rx, 0.6 * ry),
    )
    for px, py, pa, pb in parts:
        for arr, shrink in ((outer, 0.0), (inner, cortex)):
            win, m = frame.star(px, py, pa - shrink, pb - shrink)
            arr[win] |= m
    if t > 0:
        win, notch = frame.star(cx, cy + 0.75 * ry, 0.22 * rx * t, 0.55 * ry * t)
        outer[win] &= ~notch
        inner[win] &= ~notch
    return (cx, cy, rx, ry), outer, inner & outer


def render_thigh(seed: int, index: int, size: int = 256) -> tuple[PhantomCase, PhantomDebug]:
    """Case ``index`` of the thigh-MRI stream ``seed``: image float32 (size, size) in a.u."""
    subject, slot = divmod(index, SLICES_PER_SUBJECT)
    subj = _subject(rng_for(KIND, seed, subject))
    rng = rng_for(KIND, seed, subject, 1 + slot)
    z = Z_RANGE[0] + (slot + rng.uniform(0.0, 1.0)) / SLICES_PER_SUBJECT * (Z_RANGE[1] - Z_RANGE[0])
    empty = bool(rng.uniform() < EMPTY_PROBABILITY)
    spacing = subj.fov / size
    frame = Frame(
        size,
        spacing,
        subj.angle + rng.normal(0.0, 2.0),
        (subj.shift[0] + rng.normal(0.0, 3.0), subj.shift[1] + rng.normal(0.0, 3.0)),
        subj.mirror,
        rng,
        warp_mm=rng.uniform(1.5, 3.0),
    )
    canvas = Canvas(frame, STRUCTURES[KIND], air=0.0)
    if not empty:
        _paint_thigh(canvas, subj, z, rng)
    image, label, debug = render(canvas, "MR", rng, subj.blur, subj.noise, subj.bias_amp)
    case = PhantomCase(
        case_id=case_id(KIND, seed, index),
        subject=subject_id(KIND, seed, subject),
        image=image,
        label=label,
        present=presence(label, STRUCTURES[KIND]),
        spacing=(spacing, spacing),
        kind=KIND,
        meta={"z": round(z, 4), "side": "right" if subj.mirror < 0 else "left", "empty": empty},
    )
    return case, debug


def _paint_thigh(canvas: Canvas, subj: _Subject, z: float, rng: np.random.Generator) -> None:
    frame = canvas.frame
    v = subj.values
    taper = interp(z, (0.0, 1.0, 1.12), (1.1, 0.86, 0.84))
    big_a, big_b = subj.a0 * taper, subj.b0 * taper
    win, s, theta, per_s = frame.polar(0.0, 0.0, big_a, big_b, 0.0, subj.limb_harm, frame.full)
    depth = (1.0 - s) * per_s
    limb = s < 1.0
    t_skin = canvas.tissue("skin", "skin", v["skin"])
    t_fat = canvas.tissue("subcutaneous_fat", "subcutaneous_fat", v["subcutaneous_fat"])
    canvas.tmap[limb] = t_fat
    canvas.tmap[limb & (depth < subj.skin_t)] = t_skin
    fat_t = subj.fat_t0 * (0.85 + 0.3 * z) * (1.0 + 0.45 * np.cos(theta - subj.fat_phase))
    fat_t = np.clip(fat_t * radial(theta, subj.fat_harm), 1.5, 0.3 * min(big_a, big_b))
    region = limb & (depth >= subj.skin_t + fat_t)

    femur, bone, marrow = _femur_shape(frame, subj, z, big_a, big_b)
    _paint_muscles(canvas, subj, z, region & ~bone, big_a, big_b, femur)

    # neurovascular bundle: femoral triangle -> adductor canal -> popliteal fossa
    if z < 1.08:
        zs = (0.0, 0.35, 0.6, 0.85, 0.95, 1.12)
        nx = interp(z, zs, (-0.25, -0.35, -0.33, -0.2, -0.05, 0.0)) * big_a
        ny = interp(z, zs, (-0.5, -0.3, -0.05, 0.3, 0.42, 0.45)) * big_b
        t_ifat = canvas.tissue("intermuscular_fat", "intermuscular_fat", v["intermuscular_fat"])
        t_vessel = canvas.tissue("vessel", "intermuscular_fat", v["vessel"])
        win, pad = frame.star(nx, ny, 8.0, 7.0, rng.uniform(0, np.pi))
        canvas.paint(t_ifat, win, pad & region[win])
        for dx, dy, r in ((-2.5, 0.0, 3.2), (2.8, 1.0, 3.8)):
            win, m = frame.star(nx + dx, ny + dy, r, r * 0.9)
            canvas.paint(t_vessel, win, m & region[win])
    # great saphenous vein in the medial subcutaneous fat
    ang = np.pi + rng.normal(0.0, 0.25)
    rr = 1.0 - (subj.skin_t + 0.5 * subj.fat_t0) / big_a
    win, m = frame.star(rr * big_a * np.cos(ang), rr * big_b * np.sin(ang), 2.2, 2.2)
    t_vein = canvas.tissue("saphenous_vein", "subcutaneous_fat", v["vessel"])
    canvas.paint(t_vein, win, m, [t_fat])

    t_cortex = canvas.tissue("cortex", "femur", v["cortex"])
    t_marrow = canvas.tissue("marrow", "femur", v["marrow"])
    canvas.tmap[bone & limb] = t_cortex
    canvas.tmap[marrow & limb] = t_marrow

    if z > 0.97:  # patella, in front of the trochlea
        fx, fy, _, fry = femur
        size_p = np.sqrt(max(0.0, 1.0 - ((z - 1.06) / 0.09) ** 2))
        if size_p > 0.05:
            pa, pb = 21.0 * size_p, 10.0 * size_p
            py = fy - 0.75 * fry - 6.0 - pb
            inside = limb & (depth > subj.skin_t + 1.0)
            pc = canvas.tissue("patella_cortex", "patella", v["cortex"])
            pm = canvas.tissue("patella_marrow", "patella", v["marrow"])
            win, m = frame.star(fx, py, pa, pb, 0.0)
            canvas.paint(pc, win, m & inside[win])
            win, m = frame.star(fx, py, max(pa - 2.0, 0.1), max(pb - 2.0, 0.1), 0.0)
            canvas.paint(pm, win, m & inside[win])
