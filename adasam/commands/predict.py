"""Run the pipeline on one slice and write PNGs + JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from adasam.settings import Settings, resolve_device

HELP = "run the pipeline on one slice and write PNGs + JSON"
USER_ERRORS = (ValueError, OSError)
PICTURE_SIDE = 2048
"""Default longest side of the written pictures (slice, CAM, prompts and manual overlays); the
mask PNGs are always at the slice's own size."""


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="PNG/JPEG/TIFF, DICOM, NIfTI (.nii/.nii.gz) or .npy")
    p.add_argument("--bundle", help="model bundle directory (default: ADASAM_BUNDLE or the demo)")
    p.add_argument("--structure", help="only this structure (default: all of the model's)")
    p.add_argument("--slice", type=int, default=None, help="slice index for volumes")
    p.add_argument(
        "--axis",
        type=int,
        default=2,
        choices=(0, 1, 2),
        help="volume axis after canonical reorientation (2 = axial)",
    )
    p.add_argument(
        "--window",
        help="display window of the written pictures: ct-abdomen, ct-liver, ct-bone, ct-lung, "
        "ct-brain or auto (the model always sees the slice through its own window)",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--picture-side",
        type=_positive_int,
        default=PICTURE_SIDE,
        help="longest side of the written pictures in pixels: a larger slice is drawn shrunk "
        f"to it (default {PICTURE_SIDE}); the mask PNGs always keep the slice's own size",
    )
    p.add_argument(
        "--box",
        help="a box drawn by hand, x0,y0,x1,y1 in pixels (XYXY, inclusive): SAM segments it, "
        "whatever the classifier says",
    )
    p.add_argument(
        "--point",
        action="append",
        default=[],
        help="a click by hand, x,y (positive) or x,y,neg (negative); repeatable",
    )
    p.add_argument("--label", default="manual", help="name of what --box/--point outline")
    p.add_argument(
        "--zero-shot",
        choices=("auto", "yes", "no"),
        default="auto",
        help="hand prompts with plain LiteMedSAM (yes), the bundle's SAM (no), or the bundle's "
        "SAM in its domain and plain LiteMedSAM outside it (auto)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels >= 1, got {text!r}")
    return value


def run(args: argparse.Namespace, settings: Settings) -> int:
    from adasam import scaling
    from adasam.bundle import read_config
    from adasam.imaging import model_image
    from adasam.shown import Shown

    bundle_dir = Path(args.bundle) if args.bundle else settings.bundle_dir
    config = read_config(bundle_dir)
    if args.structure and args.structure not in config.structures:
        return _fail(
            f"the model {config.name!r} does not segment {args.structure!r}; "
            f"choose one of: {', '.join(config.structures)}"
        )
    if not Path(args.file).is_file():
        return _fail(f"{args.file} does not exist or is not a file")
    sl = _load(args, settings, config.window)
    image = model_image(sl, config.window)  # never --window: that one is for the pictures
    drawn = _drawn_prompts(args, sl.display.shape[:2])  # checked before any model runs
    if not config.trained:
        print(
            f"warning: model bundle {bundle_dir} is UNTRAINED (random weights, a placeholder "
            "until the demo model is trained): its masks and heatmaps mean nothing",
            file=sys.stderr,
        )
    predictor = _predictor(bundle_dir, settings)
    structures = [args.structure] if args.structure else None
    pred = scaling.predict(predictor, image, structures)  # large slices downscaled
    manual = _manual_prompts(args, image, predictor, pred, settings, drawn)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shown = Shown.of(sl.display, args.picture_side)  # one bounded copy for every picture
    result = {
        "input": _input_entry(sl),
        "pictures": _pictures_entry(shown, args.picture_side),
        "structures": _write_structures(out, shown, predictor, pred),
        "domain": None if pred.domain is None else pred.domain.to_dict(),
        "trained_on": None if config.domain is None else config.domain.description,
        "manual": None if manual is None else _write_manual(manual, shown, out),
        "timings_ms": {k: round(v, 2) for k, v in pred.timings_ms.items()},
        "model": pred.model,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    _report(sl, pred, config, manual, result, out)
    return 0


def _load(args: argparse.Namespace, settings: Settings, model_window: str | None) -> Any:
    """The slice, shown through ``--window`` or else as the model sees it."""
    from adasam.imaging import load_slice, with_preferred_window

    sl = load_slice(
        Path(args.file),
        name=Path(args.file).name,
        slice_index=args.slice,
        axis=args.axis,
        window=args.window,
        max_pixels=settings.max_pixels,
        allow_burned_in=settings.allow_burned_in,
    )
    if args.window is None:  # shown in the model's window, for HU data only
        sl = with_preferred_window(sl, model_window)
    return sl


def _backend(settings: Settings) -> Any:
    """Builds each model's backend (``ADASAM_BACKEND``), the choice reported on stderr."""
    from adasam.backends import backend_factory

    return backend_factory(
        settings.backend,
        settings.cache_dir or settings.data_dir / "cache",
        resolve_device(settings.device),
        lambda line: print(line, file=sys.stderr),
    )


def _predictor(bundle_dir: Path, settings: Settings) -> Any:
    from adasam.predictor import CACHE_DTYPES, Predictor

    return Predictor.from_dir(
        bundle_dir,
        resolve_device(settings.device),
        settings.embed_cache_size,
        backend=_backend(settings),
        cache_bytes=settings.embed_cache_bytes,
        cache_dtype=CACHE_DTYPES[settings.embed_cache_dtype],
    )


def _input_entry(sl: Any) -> dict[str, object]:
    return {
        "name": sl.source_name,
        "format": sl.source_format,
        "modality": sl.modality,
        "shape": list(sl.shape),
        "spacing_mm": list(sl.spacing) if sl.spacing else None,
        "window": None
        if sl.window is None
        else {"name": sl.window.name, "level": sl.window.level, "width": sl.window.width},
        "slice_index": sl.slice_index,
        "axis": sl.axis,
    }


def _pictures_entry(shown: Any, max_side: int) -> dict[str, object]:
    """The written pictures' size and scale (boxes, points and masks stay in slice pixels)."""
    sx, sy = shown.factors
    return {
        "shape": list(shown.hw),
        "max_side": max_side,
        "shrunk": shown.shrunk,
        "scale_xy": [round(sx, 6), round(sy, 6)],
    }


def _write_structures(out: Path, shown: Any, predictor: Any, pred: Any) -> list[dict[str, object]]:
    """``slice.png``, each structure's CAM, prompts and candidate PNGs; their JSON entries.

    The pictures are drawn on ``shown`` (the bounded display image); the masks at full size.
    """
    from PIL import Image

    from adasam.render import heatmap_overlay

    Image.fromarray(shown.image).save(out / "slice.png")
    entries = []
    for s in pred.structures:
        cam = heatmap_overlay(shown.image, shown.heatmap(s.heatmap))
        Image.fromarray(cam).save(out / f"cam_{s.name}.png")
        entry: dict[str, object] = {
            "name": s.name,
            "probability": round(s.probability, 6),
            "found": s.found,
            "box": None,
            "point": None,
            "candidates": [],
        }
        if s.prompts is not None:
            entry.update(_write_prompted(out, shown, predictor.frame(pred.image_hw), s))
        entries.append(entry)
    return entries


def _write_prompted(out: Path, shown: Any, frame: Any, s: Any) -> dict[str, object]:
    """The prompts overlay (bounded) and the candidate masks (full size) of a found ``s``."""
    import numpy as np
    from PIL import Image

    from adasam.render import mask_png, prompts_overlay

    prompt_mask = shown.mask(frame.lowres_region(s.prompts.mask_logits))
    drawn = prompts_overlay(shown.image, shown.prompts(s.prompts), prompt_mask)
    Image.fromarray(drawn).save(out / f"prompts_{s.name}.png")
    cands = []
    for i, c in enumerate(s.candidates):
        name = f"cand_{s.name}_{i}.png"
        mask_png(c.mask).save(out / name)
        cands.append(
            {"mask": name, "score": round(c.score, 6), "area_px": int(np.count_nonzero(c.mask))}
        )
    return {
        "box": [int(v) for v in s.prompts.box],
        "point": None if s.prompts.point is None else [int(v) for v in s.prompts.point],
        "candidates": cands,
    }


def _report(sl: Any, pred: Any, config: Any, manual: Any, result: dict, out: Path) -> None:
    """What the run found (stdout) and the out-of-domain warning (stderr)."""
    found = [e["name"] for e in result["structures"] if e["found"]]
    if pred.domain is not None and not pred.domain.in_domain:
        print(
            f"this image is unlike the model's training slices ({config.domain.description}; "
            f"domain score {pred.domain.score:.1f} > {pred.domain.threshold:.1f}): its "
            "classifier is not trusted here and no automatic prompt was made. Draw a box "
            "(--box x0,y0,x1,y1) or click (--point x,y) instead.",
            file=sys.stderr,
        )
    if manual is not None:
        print(f"{manual['label']}: {len(manual['candidates'])} mask(s) from {manual['model']}")
    print(
        f"{sl.source_name}: found {', '.join(found) if found else 'no structure'}; "
        f"wrote {out}/result.json"
    )


def _drawn_prompts(args: argparse.Namespace, hw: tuple[int, int]) -> tuple[object, list] | None:
    """The parsed ``--box`` and ``--point`` prompts (None without either)."""
    from adasam.manual import parse_box, parse_point

    if not args.box and not args.point:
        return None
    box = parse_box(args.box, hw) if args.box else None
    return box, [parse_point(p, hw) for p in args.point]


def _manual_prompts(
    args: argparse.Namespace,
    image: object,
    predictor: object,
    pred: object,
    settings: Settings,
    drawn: tuple[object, list] | None,
) -> dict[str, object] | None:
    """Candidates for the hand-drawn ``--box``/``--point`` prompts, or None without them."""
    from adasam.manual import segment_by_hand, zero_shot_predictor

    if drawn is None:
        return None
    box, clicks = drawn
    outside = pred.domain is not None and not pred.domain.in_domain  # type: ignore[attr-defined]
    use_base = args.zero_shot == "yes" or (args.zero_shot == "auto" and outside)
    model = (
        zero_shot_predictor(resolve_device(settings.device), backend=_backend(settings))
        if use_base
        else predictor
    )
    cands = segment_by_hand(model, image, box, clicks)  # type: ignore[arg-type]
    return {
        "label": args.label,
        "box": None if box is None else [float(v) for v in box],
        "points": [[c.x, c.y, c.positive] for c in clicks],
        "model": model.bundle.config.name,  # type: ignore[attr-defined]
        "candidates": cands,
    }


def _write_manual(manual: dict[str, object], shown: Any, out: Path) -> dict[str, object]:
    """Write ``manual_<label>_<i>.png`` masks (full size) and an overlay (on the bounded
    ``shown``); the JSON entry for them."""
    import re

    import numpy as np
    from PIL import Image

    from adasam.render import mask_overlay, mask_png

    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", str(manual["label"]))[:40] or "manual"
    entries = []
    for i, c in enumerate(manual["candidates"]):  # type: ignore[attr-defined]
        name = f"manual_{safe}_{i}.png"
        mask_png(c.mask).save(out / name)
        entries.append(
            {"mask": name, "score": round(c.score, 6), "area_px": int(np.count_nonzero(c.mask))}
        )
    best = manual["candidates"][0]  # type: ignore[index]
    overlay = mask_overlay(shown.image, shown.mask(best.mask))
    Image.fromarray(overlay).save(out / f"manual_{safe}.png")
    return {**{k: v for k, v in manual.items() if k != "candidates"}, "candidates": entries}
