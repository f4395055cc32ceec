"""Propagation from one accepted middle slice vs prompting every slice from its own CAM.

On coherent phantom volumes (:func:`adasam.phantoms.generate_volume`) and a model bundle, for
each target structure of each volume:

* **propagation**: the ground-truth mask of the middle slice of the structure's extent is
  accepted, then carried up and down (:func:`adasam.propagate.propagate`);
* **CAM per slice**: :meth:`adasam.predictor.Predictor.predict` on every slice (the automatic
  pipeline, best candidate when the structure is found, nothing otherwise).

Reported per method: 3D Dice against the ground truth, the share of slices that would need a
correction (slice Dice below ``--ok-dice``; a slice empty in both counts as right; the accepted
slice is not counted), and the wall time per volume (encoder included; the embedding cache is
cleared before each method). Slices are shown to the model exactly as in training: the
phantom's PNG encoding read back with :func:`adasam.imaging.load_slice`.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from adasam.imaging import load_slice, with_preferred_window
from adasam.phantoms import STRUCTURES, TARGETS, encode_png, generate_volume
from adasam.predictor import Predictor
from adasam.propagate import PropagationConfig, VolumeAnnotation, propagate


@dataclass
class Row:
    volume: str
    structure: str
    method: str
    dice_3d: float
    needs_correction: float
    slices_scored: int
    seconds: float


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two bool arrays; 1.0 when both are empty."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def model_images(image: np.ndarray, modality: str, window: str | None) -> list[np.ndarray]:
    """uint8 (H, W, 3) per slice of a phantom volume, as the training data loader shows them."""
    out = []
    for plane in image:
        buf = io.BytesIO()
        Image.fromarray(encode_png(plane, modality)).save(buf, format="PNG")
        out.append(with_preferred_window(load_slice(buf.getvalue()), window).display)
    return out


def correction_share(pred: np.ndarray, gt: np.ndarray, ok: float, skip: int | None) -> tuple:
    ks = [k for k in range(len(gt)) if k != skip and (gt[k].any() or pred[k].any())]
    bad = sum(dice(pred[k], gt[k]) < ok for k in ks)
    return (bad / len(ks) if ks else 0.0), len(ks)


def _propagated(predictor, images, gt, cfg) -> tuple[np.ndarray, int, float]:
    extent = np.flatnonzero(gt.any(axis=(1, 2)))
    start = int(extent[len(extent) // 2])
    ann = VolumeAnnotation(gt.shape)
    ann.accept(start, gt[start])
    predictor.clear_cache()
    t0 = time.perf_counter()
    propagate(predictor, images, ann, start, config=cfg)
    return ann.masks, start, time.perf_counter() - t0


def _cam(predictor, images, structure) -> tuple[np.ndarray, float]:
    predictor.clear_cache()
    t0 = time.perf_counter()
    out = np.zeros((len(images), *images[0].shape[:2]), dtype=bool)
    for k, image in enumerate(images):
        result = predictor.predict(image, [structure]).structure(structure)
        if result.found and result.candidates:
            out[k] = result.candidates[0].mask
    return out, time.perf_counter() - t0


def run_bench(
    bundle: Path, kind: str, seed: int, n: int, depth: int, size: int, ok: float, cfg
) -> list[Row]:
    predictor = Predictor.from_dir(bundle, cache_size=max(16, cfg.batch_size))
    window = predictor.bundle.config.window
    targets = [s for s in TARGETS[kind] if s in predictor.structures]
    if not targets:
        raise ValueError(f"the bundle segments {predictor.structures}, none of {TARGETS[kind]}")
    rows = []
    for index in range(n):
        vol = generate_volume(kind, seed, index, depth=depth, size=size)
        images = model_images(vol.image, vol.modality, window)
        for structure in targets:
            gt = vol.label == STRUCTURES[kind][structure]
            if not gt.any():
                continue
            prop, start, t_prop = _propagated(predictor, images, gt, cfg)
            share, scored = correction_share(prop, gt, ok, start)
            rows.append(
                Row(vol.volume_id, structure, "propagation", dice(prop, gt), share, scored, t_prop)
            )
            cam, t_cam = _cam(predictor, images, structure)
            share, scored = correction_share(cam, gt, ok, None)
            rows.append(
                Row(vol.volume_id, structure, "cam-per-slice", dice(cam, gt), share, scored, t_cam)
            )
    return rows


def summary_table(rows: list[Row]) -> str:
    """Markdown: per structure and method, mean ± sd over volumes."""
    lines = [
        "| structure | method | volumes | 3D Dice | slices needing correction | s / volume |",
        "|---|---|---|---|---|---|",
    ]
    keys = sorted({(r.structure, r.method) for r in rows})
    for structure, method in keys:
        sel = [r for r in rows if r.structure == structure and r.method == method]
        d = np.array([r.dice_3d for r in sel])
        c = np.array([r.needs_correction for r in sel])
        t = np.array([r.seconds for r in sel])
        lines.append(
            f"| {structure} | {method} | {len(sel)} | {d.mean():.3f} ± {d.std():.3f} | "
            f"{100 * c.mean():.0f} % ± {100 * c.std():.0f} | {t.mean():.1f} ± {t.std():.1f} |"
        )
    return "\n".join(lines)


def main(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = PropagationConfig(
        box_margin=args.box_margin, min_score=args.min_score, use_logits=args.use_logits
    )
    rows = run_bench(
        Path(args.bundle), args.kind, args.seed, args.n, args.depth, args.size, args.ok_dice, cfg
    )
    table = summary_table(rows)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "rows": [asdict(r) for r in rows],
        }
        out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0
