"""``python -m adasam``: predict, phantoms, bench, train, evaluate.

User errors (bad file, bad bundle, bad argument) exit with code 2 and one line on stderr,
never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from adasam.errors import AdaSamError
from adasam.settings import Settings, resolve_device

EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
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


def cmd_phantoms(argv: Sequence[str]) -> int:
    from adasam import phantoms

    return phantoms.main(list(argv))


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from adasam import bench

    return bench.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m adasam", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="run the pipeline on one slice and write PNGs + JSON")
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

    sub.add_parser("phantoms", help="write procedural phantom slices (see --help)", add_help=False)

    b = sub.add_parser("bench", help="latency of our pipeline vs segment-anything's SamPredictor")
    b.add_argument("--runs", type=int, default=5, help="timed runs per measurement (median)")
    b.add_argument("--size", type=int, default=512, help="side of the square test slice")
    b.add_argument("--skip-vit-b", action="store_true", help="only the small SAM")
    b.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "predict": cmd_predict,
    "bench": cmd_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "phantoms":
        return cmd_phantoms(argv[1:])
    if argv and argv[0] == "compare":
        from adasam.training import compare

        return compare.main(argv[1:])
    if argv and argv[0] in ("train", "evaluate", "pretrain-sam"):
        from adasam.training import cli as training_cli

        return training_cli.main(argv)
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return COMMANDS[args.command](args, settings)
    except AdaSamError as exc:
        return _fail(str(exc))
    except (ValueError, OSError) as exc:
        return _fail(f"{exc}")
