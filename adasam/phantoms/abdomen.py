"""Axial abdominal CT in Hounsfield units, from the lung bases (z = -0.08) to the pelvis (z = 1).

Canonical frame (mm): origin at the body centre, ``x`` grows to the patient's left (image right,
radiological convention), ``y`` posteriorly (image down). The patient lies supine on the table.

Anatomy along z (simplified from real anatomy):

- lungs: z < 0.12 (posterior costophrenic recesses), heart anterior for z < 0;
- liver: from its dome (tiny, z about 0) to the right lobe's tip (z about 0.62), the left lobe
  across the midline in the upper half, lobulated outline, hepatic vessels, an optional
  hypodense lesion and gallbladder;
- spleen z < 0.38, stomach (air-fluid level) z < 0.42, pancreas 0.3..0.5;
- kidneys 0.3..0.8 in perirenal fat, psoas growing from 0.45, bowel loops and colon with gas
  below 0.3; spine (vertebral body, canal, posterior elements), aorta, IVC and ribs throughout.

Each subject has a contrast phase: ``native`` (liver about 55 HU) or ``portal`` venous (liver
about 110 HU, enhanced vessels and kidneys).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._core import (
    SLICES_PER_SUBJECT,
    STRUCTURES,
    Canvas,
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

KIND = "liver-ct"
FOV_MM = 400.0  # fixed field of view: pixel spacing is FOV_MM / size for the whole dataset
Z_RANGE = (-0.08, 1.0)


@dataclass(frozen=True)
class _Subject:
    """Per-subject (per-volume) parameters, drawn once from the subject's random stream."""

    fov: float
    a: float  # body semi-axis, left-right (mm)
    b: float  # body semi-axis, anterior-posterior (mm)
    body_harm: np.ndarray
    fat_t0: float
    fat_harm: np.ndarray
    wall_t: float
    r_vb: float  # vertebral body radius (mm)
    liver_z: tuple[float, float]
    liver_scale: float
    right_harm: np.ndarray
    left_harm: np.ndarray
    left_lobe: float  # size of the left lobe relative to typical
    lesion: tuple[float, float, float, float] | None  # (x, y, r, z-centre) in liver fractions
    gallbladder: bool
    kidney_z: tuple[float, float, float, float]  # right start, right end, left start, left end
    spleen_scale: float
    phase: str
    values: dict[str, float]
    noise: float
    blur: float
    angle: float
    shift: tuple[float, float]


def _subject(rng: np.random.Generator) -> _Subject:
    a = rng.uniform(125.0, 170.0)
    b = a * rng.uniform(0.66, 0.8)
    fov = FOV_MM
    phase = "portal" if rng.uniform() < 0.6 else "native"
    u = rng.uniform
    fat = u(-115.0, -85.0)
    values = {
        "skin": u(10.0, 40.0),
        "fat": fat,
        "visceral_fat": fat + u(0.0, 15.0),
        "lung": u(-880.0, -820.0),
        "cortex": u(650.0, 950.0),
        "cancellous": u(220.0, 330.0),
        "posterior_elements": u(450.0, 700.0),
        "rib": u(400.0, 700.0),
        "csf": u(5.0, 15.0),
        "gas": u(-1000.0, -975.0),
        "fluid": u(0.0, 20.0),
        "feces": u(-200.0, -80.0),
        "table_shell": u(-50.0, 150.0),
        "table_foam": u(-800.0, -650.0),
    }
    if phase == "native":
        liver = u(50.0, 65.0)
        values |= {
            "liver": liver,
            "spleen": liver - u(4.0, 12.0),
            "kidney": u(28.0, 38.0),
            "blood": u(35.0, 48.0),
            "pancreas": u(35.0, 45.0),
            "bowel_wall": u(30.0, 45.0),
            "muscle": u(40.0, 55.0),
        }
    else:
        liver = u(95.0, 125.0)
        values |= {
            "liver": liver,
            "spleen": u(100.0, 130.0),
            "kidney": u(140.0, 190.0),
            "blood": u(140.0, 190.0),
            "pancreas": u(80.0, 110.0),
            "bowel_wall": u(60.0, 90.0),
            "muscle": u(50.0, 65.0),
        }
    values["lesion"] = liver - u(25.0, 50.0)
    values["gallbladder"] = u(0.0, 20.0)
    lesion = None
    if u() < 0.3:
        lesion = (u(-0.5, 0.3), u(-0.4, 0.4), u(5.0, 18.0), u(0.2, 0.8))
    z0 = u(-0.01, 0.04)
    half = 0.04 * fov
    return _Subject(
        fov=float(fov),
        a=float(a),
        b=float(b),
        body_harm=harmonics(rng, 0.03, 2, 5),
        fat_t0=float(u(8.0, 32.0)),
        fat_harm=harmonics(rng, 0.2, 2, 4),
        wall_t=float(u(6.0, 12.0)),
        r_vb=float(u(16.0, 21.0)),
        liver_z=(float(z0), float(z0 + u(0.52, 0.66))),
        liver_scale=float(u(0.85, 1.15)),
        right_harm=harmonics(rng, 0.09, 2, 6),
        left_harm=harmonics(rng, 0.12, 2, 5),
        left_lobe=float(u(0.6, 1.3)),
        lesion=lesion,
        gallbladder=bool(u() < 0.55),
        kidney_z=(u(0.33, 0.4), u(0.75, 0.82), u(0.28, 0.35), u(0.7, 0.78)),
        spleen_scale=float(u(0.8, 1.2)),
        phase=phase,
        values={k: float(v) for k, v in values.items()},
        noise=float(u(6.0, 18.0)),
        blur=float(u(0.5, 0.8)),
        angle=float(u(-5.0, 5.0)),
        shift=(float(u(-half, half)), float(u(-half, half))),
    )


def _bump(z: float, z0: float, z1: float) -> float:
    """Elliptical size profile: 0 outside ``(z0, z1)``, 1 at the middle."""
    if z <= z0 or z >= z1:
        return 0.0
    t = (z - z0) / (z1 - z0) * 2.0 - 1.0
    return float(np.sqrt(1.0 - t * t))


def render_abdomen(seed: int, index: int, size: int = 256) -> tuple[PhantomCase, PhantomDebug]:
    """Case ``index`` of the liver-CT stream ``seed``: image float32 (size, size) in HU."""
    from ._core import Frame

    subject, slot = divmod(index, SLICES_PER_SUBJECT)
    subj = _subject(rng_for(KIND, seed, subject))
    rng = rng_for(KIND, seed, subject, 1 + slot)
    z = Z_RANGE[0] + (slot + rng.uniform(0.0, 1.0)) / SLICES_PER_SUBJECT * (Z_RANGE[1] - Z_RANGE[0])
    spacing = subj.fov / size
    frame = Frame(
        size,
        spacing,
        subj.angle + rng.normal(0.0, 0.5),
        (subj.shift[0] + rng.normal(0.0, 1.0), subj.shift[1] + rng.normal(0.0, 1.0)),
        1.0,
        rng,
        warp_mm=rng.uniform(2.0, 4.0),
    )
    canvas = Canvas(frame, STRUCTURES[KIND], air=-1000.0)
    _paint_abdomen(canvas, subj, z, rng)
    image, label, debug = render(canvas, "CT", rng, subj.blur, subj.noise)
    case = PhantomCase(
        case_id=case_id(KIND, seed, index),
        subject=subject_id(KIND, seed, subject),
        image=image,
        label=label,
        present=presence(label, STRUCTURES[KIND]),
        spacing=(spacing, spacing),
        kind=KIND,
        meta={"z": round(z, 4), "phase": subj.phase, "empty": False},
    )
    return case, debug


def _paint_abdomen(canvas: Canvas, subj: _Subject, z: float, rng: np.random.Generator) -> None:
    frame = canvas.frame
    v = subj.values
    u = rng.uniform

    def tissue(name: str, label: str | None = "body", value: str | None = None) -> int:
        return canvas.tissue(name, label, v[value or name])

    # body wall: skin, subcutaneous fat, muscle; flat back on the table
    a = subj.a * interp(z, (-0.08, 0.3, 1.0), (0.94, 1.0, 1.02))
    b = subj.b * interp(z, (-0.08, 0.4, 1.0), (1.0, 1.0, 0.95))
    win, s, theta, per_s = frame.polar(0.0, 0.0, a, b, 0.0, subj.body_harm, frame.full)
    depth = (1.0 - s) * per_s
    y_flat = 0.9 * b
    body = (s < 1.0) & (frame.y < y_flat)
    depth = np.minimum(depth, y_flat - frame.y)
    fat_t = subj.fat_t0 * (1.0 + 0.35 * np.cos(theta + np.pi / 2)) * radial(theta, subj.fat_harm)
    fat_t = np.maximum(fat_t, 3.0)
    tm = canvas.tmap
    tm[body] = tissue("subcutaneous_fat", value="fat")
    tm[body & (depth < 2.0)] = tissue("skin")
    inner = body & (depth >= 2.0 + fat_t)
    tm[inner] = tissue("muscle")
    cavity = body & (depth >= 2.0 + fat_t + subj.wall_t)
    t_vfat = tissue("visceral_fat")
    tm[cavity] = t_vfat

    # spine position: posterior elements reach to just under the back's fat
    fat_back = float(subj.fat_t0 * 0.65)
    y_back = y_flat - 2.0 - fat_back
    r_vb = subj.r_vb
    y_vb = y_back - 6.0 - 22.0 - 9.0 - r_vb
    y_front = y_vb - r_vb  # anterior surface of the vertebral body
    # the retroperitoneum behind the organs is paraspinal muscle (painted last)

    def paint(tid: int, win: tuple[slice, slice], m: np.ndarray, clip: bool = True) -> None:
        canvas.paint(tid, win, m & cavity[win] if clip else m)

    # lung bases and heart
    lung_s = interp(z, (-0.08, 0.0, 0.06, 0.12, 0.13), (1.0, 0.85, 0.55, 0.25, 0.0))
    if lung_s > 0:
        t_lung = tissue("lung", "lungs")
        t_lv = tissue("lung_vessel", "lungs", "blood")
        for side in (-1.0, 1.0):
            cx, cy = side * 0.52 * a, y_vb + 0.1 * b * (1 - lung_s)
            win, m = frame.star(cx, cy, 0.42 * a * lung_s**0.5, 0.62 * b * lung_s, 0.0)
            paint(t_lung, win, m)
            for _ in range(4):
                vx, vy = cx + u(-0.5, 0.5) * 0.3 * a, cy + u(-0.5, 0.5) * 0.4 * b
                win, m = frame.star(vx, vy, u(1.5, 3.5), u(1.5, 3.5))
                canvas.paint(t_lv, win, m, [t_lung])
    if z < 0.0:
        win, m = frame.star(0.12 * a, -0.3 * b, 0.38 * a, 0.42 * b, -0.5)
        paint(tissue("heart", value="blood"), win, m)

    # stomach with an air-fluid level (gas anterior: the patient is supine)
    st = _bump(z, 0.0, 0.44)
    if st > 0:
        cx, cy, sa, sb = 0.32 * a, -0.25 * b, 0.26 * a * st, 0.3 * b * st
        win, m = frame.star(cx, cy, sa, sb, 0.4)
        paint(tissue("stomach_wall", value="bowel_wall"), win, m)
        win, m = frame.star(cx, cy, max(sa - 4.0, 1.0), max(sb - 4.0, 1.0), 0.4)
        paint(tissue("stomach_fluid", value="fluid"), win, m)
        level = frame.y[win] < np.float32(cy - sb * u(0.0, 0.6))
        paint(tissue("gas"), win, m & level)

    # spleen: posterolateral left, crescent
    sp = _bump(z, 0.0, 0.38) * subj.spleen_scale
    if sp > 0.05:
        cx, cy = 0.6 * a, y_vb - 0.05 * b
        win, m = frame.star(cx, cy, 0.17 * a * sp, 0.33 * b * sp, 0.6)
        win2, hil = frame.star(cx - 0.12 * a * sp, cy - 0.05 * b, 0.1 * a * sp, 0.22 * b * sp, 0.6)
        m2 = m.copy()
        _and_not(m2, win, hil, win2)
        paint(tissue("spleen", "spleen"), win, m2)

    _paint_liver(canvas, subj, z, a, b, y_vb, cavity, rng)

    # pancreas across the front of the aorta
    pa = _bump(z, 0.3, 0.5)
    if pa > 0:
        win, m = frame.star(0.12 * a, y_front - 32.0, 0.33 * a * pa, 11.0 * pa, -0.25)
        paint(tissue("pancreas"), win, m)

    # kidneys in perirenal fat
    kz = subj.kidney_z
    for side, z0, z1, name in (
        (-1.0, kz[0], kz[1], "kidney_right"),
        (1.0, kz[2], kz[3], "kidney_left"),
    ):
        k = _bump(z, z0, z1)
        if k < 0.05:
            continue
        cx, cy = side * (r_vb + 0.28 * a), y_vb - 4.0
        ang = side * -0.6
        ka, kb = 30.0 * k, 22.0 * k
        win, m = frame.star(cx, cy, ka + 5.0, kb + 5.0, ang)
        paint(t_vfat, win, m)
        win, m = frame.star(cx, cy, ka, kb, ang)
        paint(canvas.tissue(name, name, v["kidney"]), win, m)
        if k > 0.5:  # renal sinus fat at the hilum, medially
            hx = cx - side * 0.55 * ka * np.cos(ang)
            win, m = frame.star(hx, cy - 4.0, 0.45 * ka, 0.35 * kb, ang)
            paint(t_vfat, win, m)

    # bowel loops and colon in the remaining visceral fat
    if z > 0.25:
        n_loops = int(interp(z, (0.25, 0.6, 1.0), (3, 18, 26)))
        lumen = (tissue("fluid"), tissue("gas"), tissue("feces"))
        t_wall = tissue("bowel_wall")
        colon = []
        if z > 0.45:
            colon.append((-0.62 * a, -0.05 * b, u(14.0, 22.0)))
        if z > 0.3:
            colon.append((0.66 * a, 0.05 * b, u(12.0, 18.0)))
        loops = colon + [
            (u(-0.7, 0.7) * a, u(-0.75, 0.3) * b, u(8.0, 19.0)) for _ in range(n_loops)
        ]
        contents = rng.choice(3, size=len(loops), p=(0.45, 0.3, 0.25))
        for j, (cx, cy, r) in enumerate(loops):
            win, m = frame.star(cx, cy, r, r * u(0.7, 1.0), u(0, np.pi))
            canvas.paint(t_wall, win, m & cavity[win], [t_vfat])
            win2, m2 = frame.star(cx, cy, r - 2.5, (r - 2.5) * 0.9, 0.0)
            canvas.paint(lumen[1] if j < len(colon) else lumen[contents[j]], win2, m2, [t_wall])

    # great vessels
    t_blood = tissue("ivc", value="blood")
    win, m = frame.star(-0.9 * r_vb - 4.0, y_front - 14.0, 13.0, 9.0, 0.2)
    paint(t_blood, win, m)
    ra = u(10.0, 12.5)
    win, m = frame.star(0.45 * r_vb + 2.0, y_front - ra - 2.0, ra, ra)
    paint(canvas.tissue("aorta", "aorta", v["blood"]), win, m)

    # psoas and paraspinal muscles
    t_muscle = tissue("muscle")
    ps = interp(z, (0.35, 0.5, 1.0), (0.0, 0.45, 1.0))
    for side in (-1.0, 1.0):
        if ps > 0:
            win, m = frame.star(
                side * (r_vb + 6.0 + 12.0 * ps), y_vb, 8.0 + 14.0 * ps, 14.0 + 6.0 * ps
            )
            paint(t_muscle, win, m, clip=False)
        win, m = frame.star(side * (0.45 * r_vb + 0.12 * a), y_back - 20.0, 0.14 * a + 6.0, 24.0)
        canvas.paint(t_muscle, win, m & inner[win])

    # iliac wings, posterolateral, at the lowest levels
    il = interp(z, (0.84, 1.0), (0.0, 1.0))
    if il > 0:
        t_ilium = tissue("ilium", value="posterior_elements")
        for side in (-1.0, 1.0):
            cx, cy = side * (0.42 + 0.1 * il) * a, y_vb + 0.1 * b
            win, m = frame.star(cx, cy, 0.26 * a * il + 4.0, 6.0, -side * 1.0)
            canvas.paint(t_ilium, win, m & inner[win])

    # spine: vertebral body (cortex + cancellous), canal, posterior elements
    t_cortex = canvas.tissue("vertebral_cortex", "spine", v["cortex"])
    t_canc = canvas.tissue("cancellous", "spine", v["cancellous"])
    t_post = canvas.tissue("posterior_elements", "spine", v["posterior_elements"])
    win, m = frame.star(0.0, y_vb, r_vb * 1.05, r_vb * 0.92)
    canvas.paint(t_cortex, win, m)
    win, m = frame.star(0.0, y_vb, r_vb * 1.05 - 2.0, r_vb * 0.92 - 2.0)
    canvas.paint(t_canc, win, m)
    y_canal = y_vb + r_vb * 0.92 + 8.0
    win, m = frame.star(0.0, y_canal, 15.0, 13.0)
    canvas.paint(t_post, win, m & (frame.y[win] > y_canal - 4.0))
    win, m = frame.star(0.0, y_canal + 10.0 + 11.0, 4.5, 13.0)  # spinous process
    canvas.paint(t_post, win, m)
    if z > 0.3:  # lumbar transverse processes
        for side in (-1.0, 1.0):
            win, m = frame.star(side * (r_vb + 10.0), y_canal - 3.0, 16.0, 4.0, side * 0.15)
            canvas.paint(t_post, win, m)
    win, m = frame.star(0.0, y_canal, 8.5, 7.5)
    canvas.paint(tissue("csf"), win, m)

    # ribs, in the body wall of the upper abdomen
    if z < 0.5:
        t_rib = tissue("rib")
        n_ribs = int(interp(z, (-0.08, 0.5), (9, 3)))
        for k in range(n_ribs):
            ang = np.pi * (0.15 + 0.7 * (k + u(0.2, 0.8)) / n_ribs)
            ang = ang if k % 2 else -ang + np.pi  # alternate sides
            ang = np.pi / 2 + (ang - np.pi / 2) * 1.15
            rr = 1.0 - (2.0 + subj.fat_t0 + 0.5 * subj.wall_t) / min(a, b)
            cx, cy = rr * a * np.cos(ang), -rr * b * np.sin(ang) * 0.9
            win, m = frame.star(cx, cy, u(4.0, 6.0), u(7.0, 11.0), ang)
            canvas.paint(t_rib, win, m & inner[win])

    # CT table below the patient (label 0)
    shell = (frame.y > y_flat + 1.5) & (frame.y < y_flat + 5.0)
    foam = (frame.y >= y_flat + 5.0) & (frame.y < y_flat + 30.0)
    tm[shell & ~body] = canvas.tissue("table_shell", None, v["table_shell"])
    tm[foam & ~body] = canvas.tissue("table_foam", None, v["table_foam"])


def _and_not(m: np.ndarray, win: tuple[slice, slice], other: np.ndarray, win2: tuple[slice, slice]):
    """``m[win] &= ~other[win2]`` where the two windows overlap (both window-shaped arrays)."""
    r0, r1 = max(win[0].start, win2[0].start), min(win[0].stop, win2[0].stop)
    c0, c1 = max(win[1].start, win2[1].start), min(win[1].stop, win2[1].stop)
    if r0 >= r1 or c0 >= c1:
        return
    a = m[r0 - win[0].start : r1 - win[0].start, c0 - win[1].start : c1 - win[1].start]
    b = other[r0 - win2[0].start : r1 - win2[0].start, c0 - win2[1].start : c1 - win2[1].start]
    a &= ~b


def _paint_liver(
    canvas: Canvas,
    subj: _Subject,
    z: float,
    a: float,
    b: float,
    y_vb: float,
    cavity: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Right lobe + left lobe, lobulated; vessels, lesion and gallbladder inside."""
    frame = canvas.frame
    v = subj.values
    z0, z1 = subj.liver_z
    if not z0 < z < z1:
        return
    t = (z - z0) / (z1 - z0)
    sr = subj.liver_scale * (
        (t / 0.2) ** 0.6 if t < 0.2 else interp(t, (0.2, 0.5, 0.8, 1.0), (1.0, 1.0, 0.55, 0.1))
    )
    sl = subj.left_lobe * interp(t, (0.0, 0.1, 0.3, 0.55, 0.62), (0.0, 0.6, 1.0, 0.3, 0.0))
    n = frame.size
    liver = np.zeros((n, n), dtype=bool)
    # right lobe: its dome is posterior-lateral, its inferior tip lateral-anterior
    rx = -interp(t, (0.0, 0.5, 1.0), (0.4, 0.45, 0.55)) * a
    ry = interp(t, (0.0, 0.5, 1.0), (0.05, -0.05, -0.2)) * b
    win, m = frame.star(rx, ry, 0.44 * a * sr, 0.66 * b * sr, 0.15, subj.right_harm)
    liver[win] |= m
    if sl > 0.02:
        win, m = frame.star(0.02 * a, -0.45 * b, 0.42 * a * sl, 0.24 * b * sl, -0.2, subj.left_harm)
        liver[win] |= m
    liver &= cavity
    # keep the liver out of the retroperitoneum behind the vertebral body's front
    liver &= (frame.y < np.float32(y_vb + 0.25 * b)) | (frame.x < np.float32(-0.2 * a))
    t_liver = canvas.tissue("liver", "liver", v["liver"])
    canvas.tmap[liver] = t_liver
    if not liver.any():
        return
    rows, cols = np.nonzero(liver)
    t_vessel = canvas.tissue("hepatic_vessel", "liver", v["blood"])
    u = rng.uniform
    for _ in range(int(u(3, 8))):
        j = int(u(0, rows.size))
        cx, cy = float(frame.x[rows[j], cols[j]]), float(frame.y[rows[j], cols[j]])
        r = u(1.5, 5.0)
        win, m = frame.star(cx, cy, r, r * u(0.6, 1.0), u(0, np.pi))
        canvas.paint(t_vessel, win, m, [t_liver])
    if subj.lesion is not None:
        lx, ly, lr, lz = subj.lesion
        scale = _bump(t, lz - 0.2, lz + 0.2)
        if scale > 0.1:
            cx, cy = rx + lx * 0.44 * a * sr, ry + ly * 0.66 * b * sr
            win, m = frame.star(cx, cy, lr * scale, lr * scale * 0.9)
            canvas.paint(canvas.tissue("lesion", "liver", v["lesion"]), win, m, [t_liver])
    if subj.gallbladder:
        g = _bump(t, 0.4, 0.8)
        if g > 0.1:
            win, m = frame.star(-0.18 * a, -0.3 * b, 14.0 * g, 22.0 * g, 0.5)
            t_gb = canvas.tissue("gallbladder", "body", v["gallbladder"])
            canvas.paint(t_gb, win, m & cavity[win])
