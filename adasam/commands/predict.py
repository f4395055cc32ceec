"""Run the pipeline on one slice and write PNGs + JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from adasam.settings import Settings, resolve_device

HELP = "run the pipeline on one slice and write PNGs + JSON"
USER_ERRORS = (ValueError, OSError)


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
    p.add_argument("--window", help="ct-abdomen, ct-liver, ct-bone, ct-lung, ct-brain or auto")
    p.add_argument("--out", required=True, help="output directory")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import numpy as np
    from PIL import Image

    from adasam.bundle import read_config
    from adasam.imaging import load_slice, with_preferred_window
    from adasam.predictor import Predictor
    from adasam.render import heatmap_overlay, mask_png, prompts_overlay

    bundle_dir = Path(args.bundle) if args.bundle else settings.bundle_dir
    config = read_config(bundle_dir)
    if args.structure and args.structure not in config.structures:
        return _fail(
            f"the model {config.name!r} does not segment {args.structure!r}; "
            f"choose one of: {', '.join(config.structures)}"
        )
    if not Path(args.file).is_file():
        return _fail(f"{args.file} does not exist or is not a file")
    sl = load_slice(
        Path(args.file),
        name=Path(args.file).name,
        slice_index=args.slice,
        axis=args.axis,
        window=args.window,
        max_pixels=settings.max_pixels,
    )
    if args.window is None:  # the model's window, for HU data only (PNGs are already windowed)
        sl = with_preferred_window(sl, config.window)
    if not config.trained:
        print(
            f"warning: model bundle {bundle_dir} is UNTRAINED (random weights, a placeholder "
            "until the demo model is trained): its masks and heatmaps mean nothing",
            file=sys.stderr,
        )
    predictor = Predictor.from_dir(
        bundle_dir, resolve_device(settings.device), settings.embed_cache_size
    )
    structures = [args.structure] if args.structure else None
    pred = predictor.predict(sl.display, structures)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sl.display).save(out / "slice.png")
    entries = []
    for s in pred.structures:
        Image.fromarray(heatmap_overlay(sl.display, s.heatmap)).save(out / f"cam_{s.name}.png")
        entry: dict[str, object] = {
            "name": s.name,
            "probability": round(s.probability, 6),
            "found": s.found,
            "box": None,
            "point": None,
            "candidates": [],
        }
        if s.prompts is not None:
            frame = predictor.frame(pred.image_hw)
            prompt_mask = frame.lowres_region(s.prompts.mask_logits)
            Image.fromarray(prompts_overlay(sl.display, s.prompts, prompt_mask)).save(
                out / f"prompts_{s.name}.png"
            )
            entry["box"] = [int(v) for v in s.prompts.box]
            if s.prompts.point is not None:
                entry["point"] = [int(v) for v in s.prompts.point]
            cands = []
            for i, c in enumerate(s.candidates):
                name = f"cand_{s.name}_{i}.png"
                mask_png(c.mask).save(out / name)
                cands.append(
                    {
                        "mask": name,
                        "score": round(c.score, 6),
                        "area_px": int(np.count_nonzero(c.mask)),
                    }
                )
            entry["candidates"] = cands
        entries.append(entry)
    result = {
        "input": {
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
        },
        "structures": entries,
        "timings_ms": {k: round(v, 2) for k, v in pred.timings_ms.items()},
        "model": pred.model,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    found = [e["name"] for e in entries if e["found"]]
    print(
        f"{sl.source_name}: found {', '.join(found) if found else 'no structure'}; "
        f"wrote {out}/result.json"
    )
    return 0
