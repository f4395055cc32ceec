"""The project's 2D dataset format, written from phantoms (command: ``adasam.commands.phantoms``).

Layout of a dataset directory ``OUT``::

    OUT/images/<case_id>.png   format "png": MR -> 16-bit gray, value = round(signal * 16)
                               (MR_PNG_SCALE); CT -> 8-bit gray windowed L40/W400
                               (HU -160 -> 0, HU 240 -> 255)
    OUT/images/<case_id>.npy   format "npy": float32 (H, W) in physical units (MR a.u., CT HU)
    OUT/masks/<case_id>.png    8-bit label map (values of dataset.json "labels"), same basename
    OUT/image_labels.csv       case_id,subject,<structure>,...  with 0/1 presence
    OUT/dataset.json           kind, labels, targets, spacing_mm, seed, n, size, format,
                               generator, modality, encoding, subjects, presence counts
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from ._core import (
    GENERATOR,
    MODALITY,
    SLICES_PER_SUBJECT,
    STRUCTURES,
    TARGETS,
    PhantomCase,
    check_kind,
)
from .cases import generate

#: MR PNGs store ``round(signal * MR_PNG_SCALE)`` as uint16 (signal 0..4095.9 a.u.).
MR_PNG_SCALE = 16.0
#: CT PNGs are windowed: level 40 HU, width 400 HU (HU -160 -> 0, 240 -> 255).
CT_WINDOW = (40.0, 400.0)
FORMATS = ("png", "npy")


def encode_png(image: np.ndarray, modality: str) -> np.ndarray:
    """Physical image (float32 (H, W)) -> PNG pixel array: uint16 (MR) or uint8 (CT)."""
    if modality == "MR":
        return np.clip(np.rint(image * MR_PNG_SCALE), 0, 65535).astype(np.uint16)
    level, width = CT_WINDOW
    lo = level - width / 2.0
    return np.clip(np.rint((image - lo) / width * 255.0), 0, 255).astype(np.uint8)


def decode_png(pixels: np.ndarray, modality: str) -> np.ndarray:
    """PNG pixel array -> float32 (H, W) physical units (CT: clipped to the window)."""
    if modality == "MR":
        return (pixels.astype(np.float32) / np.float32(MR_PNG_SCALE)).astype(np.float32)
    level, width = CT_WINDOW
    lo = level - width / 2.0
    return (pixels.astype(np.float32) * np.float32(width / 255.0) + np.float32(lo)).astype(
        np.float32
    )


def _encoding(kind: str, fmt: str) -> dict[str, Any]:
    if fmt == "npy":
        unit = "HU" if MODALITY[kind] == "CT" else "a.u."
        return {"dtype": "float32", "unit": unit}
    if MODALITY[kind] == "MR":
        return {"dtype": "uint16", "unit": "a.u.", "scale": MR_PNG_SCALE, "signal": "png / scale"}
    level, width = CT_WINDOW
    return {
        "dtype": "uint8",
        "unit": "HU",
        "window": {"level": level, "width": width},
        "hu_at_0": level - width / 2.0,
        "hu_at_255": level + width / 2.0,
    }


def _save_case(case: PhantomCase, images: Path, masks: Path, fmt: str) -> None:
    if fmt == "npy":
        np.save(images / f"{case.case_id}.npy", case.image.astype(np.float32))
    else:
        Image.fromarray(encode_png(case.image, MODALITY[case.kind])).save(
            images / f"{case.case_id}.png"
        )
    Image.fromarray(case.label.astype(np.uint8)).save(masks / f"{case.case_id}.png")


def write_dataset(
    kind: str,
    n: int,
    seed: int,
    out: Path | str,
    size: int = 256,
    fmt: str = "png",
    progress: bool = True,
) -> Path:
    """Generate ``n`` cases of ``kind`` and write them in the dataset layout (module doc).

    Files of the same case ids are overwritten; other files in ``out`` are left alone (the CSV
    and ``dataset.json`` list only this dataset's cases). Returns ``out``.
    """
    check_kind(kind)
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    images, masks = out / "images", out / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    names = list(STRUCTURES[kind])
    rows: list[list[str | int]] = []
    counts = dict.fromkeys(names, 0)
    no_target = 0
    subjects: set[str] = set()
    spacing: tuple[float, float] | None = None
    cases = generate(kind, n, seed, size)
    for case in tqdm(cases, total=n, desc=f"phantoms {kind}", unit="case", disable=not progress):
        _save_case(case, images, masks, fmt)
        rows.append([case.case_id, case.subject, *(int(case.present[s]) for s in names)])
        for s in names:
            counts[s] += int(case.present[s])
        no_target += int(not any(case.present[t] for t in TARGETS[kind]))
        subjects.add(case.subject)
        spacing = spacing or case.spacing
    with open(out / "image_labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["case_id", "subject", *names])
        writer.writerows(rows)
    if spacing is None:
        from .cases import generate_case

        spacing = generate_case(kind, seed, 0, size)[0].spacing
    info = {
        "kind": kind,
        "labels": dict(STRUCTURES[kind]),
        "targets": list(TARGETS[kind]),
        "spacing_mm": [round(spacing[0], 6), round(spacing[1], 6)],
        "seed": int(seed),
        "n": int(n),
        "size": int(size),
        "format": fmt,
        "generator": GENERATOR,
        "modality": MODALITY[kind],
        "encoding": _encoding(kind, fmt),
        "subjects": len(subjects),
        "slices_per_subject": SLICES_PER_SUBJECT,
        "presence": counts,
        "no_target": no_target,
    }
    (out / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
    return out


def read_info(root: Path | str) -> dict[str, Any]:
    """The ``dataset.json`` of a dataset directory."""
    return json.loads((Path(root) / "dataset.json").read_text())


def read_case(root: Path | str, case_id: str) -> tuple[np.ndarray, np.ndarray]:
    """One case of a dataset: float32 (H, W) image in physical units, uint8 (H, W) label map.

    PNG CT images come back clipped to the L40/W400 window (HU -160..240) and quantised to
    400/255 HU; MR PNGs to 1/16 a.u.
    """
    root = Path(root)
    info = read_info(root)
    label = np.asarray(Image.open(root / "masks" / f"{case_id}.png"), dtype=np.uint8)
    if info["format"] == "npy":
        image = np.load(root / "images" / f"{case_id}.npy").astype(np.float32)
    else:
        pixels = np.asarray(Image.open(root / "images" / f"{case_id}.png"))
        image = decode_png(pixels, info["modality"])
    return image, label
