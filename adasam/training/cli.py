"""``python -m adasam train | evaluate | pretrain-sam | compare``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from adasam.errors import AdaSamError


def _structures(value: str | None) -> tuple[str, ...] | None:
    return tuple(s.strip() for s in value.split(",") if s.strip()) if value else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m adasam")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an ADA-SAM bundle (classifier + LoRA-SAM)")
    t.add_argument("--data", required=True, help="slice folder or MSD/nnU-Net raw dataset")
    t.add_argument("--labeled", required=True, help="labeled slices: a count (50) or 10%%")
    t.add_argument("--out", required=True, help="bundle directory to write (best model)")
    t.add_argument("--structures", help="comma-separated target structures")
    t.add_argument("--name", help="bundle name (default: the --out folder's name)")
    t.add_argument("--window", help="display window for DICOM/NIfTI/npy data (e.g. ct-abdomen)")
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--steps-per-epoch", type=int)
    t.add_argument("--max-steps", type=int, help="stop after this many steps (smoke runs)")
    t.add_argument("--batch-size", type=int, default=4)
    t.add_argument("--unlabeled-batch-size", type=int, default=4)
    t.add_argument("--lr", type=float, default=1e-3, help="LoRA learning rate")
    t.add_argument("--classifier-lr", type=float, default=3e-4)
    t.add_argument("--cls-loss", choices=("bce", "focal"), default="bce")
    t.add_argument("--w-cls", type=float, default=1.0)
    t.add_argument("--w-seg", type=float, default=1.0)
    t.add_argument("--w-iou", type=float, default=0.5)
    t.add_argument("--w-cons", type=float, default=1.0)
    t.add_argument(
        "--w-cam",
        type=float,
        default=0.0,
        help="optional CAM-alignment loss (CAM vs mask Dice) on labeled slices",
    )
    t.add_argument(
        "--no-feedback",
        action="store_true",
        help="cut the segmentation → classifier gradient (this is SAM-Mix)",
    )
    t.add_argument(
        "--box-source",
        choices=("cam", "mixed", "gt"),
        default="mixed",
        help="training boxes: CAM, GT (jittered) or a mix",
    )
    t.add_argument("--no-mask-prompt", action="store_true", help="box prompts only")
    t.add_argument(
        "--small-oversample",
        type=float,
        default=0.0,
        help="draw labeled slices showing a structure under --small-area pixels 1+X times as "
        "often (0: each slice once per epoch)",
    )
    t.add_argument("--small-area", type=int, default=800, help="pixels, at the training size")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-fraction", type=float, default=0.15)
    t.add_argument("--test-fraction", type=float, default=0.0)
    t.add_argument("--val-max", type=int, default=60)
    t.add_argument("--device", default="auto")
    t.add_argument("--sam", choices=("small", "vit_b", "vit_l", "vit_h"), default="small")
    t.add_argument("--sam-checkpoint", help="public SAM checkpoint (.pth) for vit_b/l/h")
    t.add_argument("--sam-base", help="safetensors SAM base (from pretrain-sam) for small")
    t.add_argument("--lora-r", type=int, default=8)
    t.add_argument("--no-lora-decoder", action="store_true")
    t.add_argument(
        "--no-calibrate",
        action="store_true",
        help="keep the default presence/CAM thresholds (no tuning on the validation slices)",
    )
    t.add_argument(
        "--calibrate-max",
        type=int,
        default=200,
        help="tune the thresholds on up to this many validation slices (--val-max only caps "
        "the per-epoch validation); 40 slices proved too few to pick them reliably",
    )
    t.add_argument(
        "--train-decoder",
        action="store_true",
        help="train every mask-decoder weight (SAMed-style), not only its LoRA",
    )
    t.add_argument(
        "--backbone", default="resnet18", choices=("resnet10", "resnet18", "resnet34", "resnet50")
    )
    t.add_argument("--classifier-size", type=int, default=256)
    t.add_argument("--output-stride", type=int, default=32, choices=(16, 32))
    t.add_argument("--init-bundle", help="start from this bundle (fine-tuning)")
    t.add_argument("--weights-dtype", choices=("float32", "float16"), default="float32")
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--max-minutes", type=float, help="stop at the first epoch end past this")
    t.add_argument("--resume", action="store_true", help="continue from OUT/training/")
    t.add_argument("--no-progress", action="store_true")

    e = sub.add_parser("evaluate", help="Dice/IoU/HD95/AUROC with CAM prompts (+ GT-box oracle)")
    e.add_argument("--bundle", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--out", required=True, help="report.json (a .md table is written beside)")
    e.add_argument("--structures")
    e.add_argument("--window")
    e.add_argument("--size", type=int, default=256)
    e.add_argument("--limit", type=int)
    e.add_argument("--no-oracle", action="store_true")
    e.add_argument(
        "--clicks",
        type=int,
        default=20,
        help="simulated-user click protocol: clicks per run (NoC@85/90, mIoU after 1/3/5 "
        "clicks, worse-click share, from the GT box and from the CAM candidate); 0: skip it",
    )
    e.add_argument(
        "--click-slices",
        type=int,
        help="run the click protocol on at most this many slices per structure (speed)",
    )
    e.add_argument(
        "--click-stop-iou",
        type=float,
        help="end a click run once IoU reaches this (speed; default: all --clicks clicks)",
    )
    e.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads (0: PyTorch's default); use 1 per run when runs share the cores",
    )
    e.add_argument("--device", default="auto")

    p = sub.add_parser("pretrain-sam", help="train a small SAM base on non-target structures")
    p.add_argument("--data", required=True, action="append", help="slice folder (repeatable)")
    p.add_argument("--exclude", required=True, help="comma-separated structures never shown")
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--init", help="continue from this SAM base (.safetensors)")
    return parser


def cmd_train(a: argparse.Namespace) -> int:
    from adasam.settings import resolve_device
    from adasam.training.loop import TrainConfig, train

    cfg = TrainConfig(
        data=a.data,
        out=a.out,
        labeled=a.labeled,
        structures=_structures(a.structures),
        name=a.name,
        window=a.window,
        epochs=a.epochs,
        steps_per_epoch=a.steps_per_epoch,
        max_steps=a.max_steps,
        batch_size=a.batch_size,
        unlabeled_batch_size=a.unlabeled_batch_size,
        lr=a.lr,
        classifier_lr=a.classifier_lr,
        cls_loss=a.cls_loss,
        w_cls=a.w_cls,
        w_seg=a.w_seg,
        w_iou=a.w_iou,
        w_cons=a.w_cons,
        w_cam=a.w_cam,
        feedback=not a.no_feedback,
        mask_prompt=not a.no_mask_prompt,
        box_source=a.box_source,
        small_oversample=a.small_oversample,
        small_area=a.small_area,
        seed=a.seed,
        val_fraction=a.val_fraction,
        test_fraction=a.test_fraction,
        val_max=a.val_max,
        device=resolve_device(a.device),
        sam=a.sam,
        sam_checkpoint=a.sam_checkpoint,
        sam_base=a.sam_base,
        lora_r=a.lora_r,
        lora_decoder=not a.no_lora_decoder,
        train_decoder=a.train_decoder,
        calibrate=not a.no_calibrate,
        calibrate_max=a.calibrate_max,
        backbone=a.backbone,
        classifier_size=a.classifier_size,
        output_stride=a.output_stride,
        init_bundle=a.init_bundle,
        weights_dtype=a.weights_dtype,
        threads=a.threads,
        max_minutes=a.max_minutes,
    )
    start = time.perf_counter()
    _, state = train(cfg, resume=a.resume, progress=not a.no_progress)
    print(
        f"best validation Dice {state.best_dice:.4f} at epoch {state.best_epoch}; "
        f"{state.step} steps in {time.perf_counter() - start:.0f} s; bundle: {a.out}"
    )
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    import numpy as np

    from adasam.errors import ConfigError
    from adasam.predictor import Predictor
    from adasam.settings import resolve_device
    from adasam.training.click_eval import ClickSettings
    from adasam.training.data import load_dataset
    from adasam.training.evaluate import evaluate_predictor, write_report

    clicks = None
    if a.clicks < 0:
        raise ConfigError(f"--clicks must be ≥ 0 (0 skips the click protocol), got {a.clicks}")
    if a.clicks:
        try:
            clicks = ClickSettings(a.clicks, a.click_slices, a.click_stop_iou)
        except ValueError as exc:
            raise ConfigError(f"click protocol: {exc}") from None

    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    predictor = Predictor.from_dir(a.bundle, resolve_device(a.device), cache_size=2)
    structures = _structures(a.structures) or predictor.structures
    window = a.window or predictor.bundle.config.window
    data = load_dataset(a.data, a.size, structures, window)
    idx = list(range(len(data)))[: a.limit] if a.limit else None
    reports = evaluate_predictor(
        predictor, data, idx, oracle=not a.no_oracle, progress=True, clicks=clicks
    )
    meta = {
        "bundle": str(a.bundle),
        "model": predictor.model_info,
        "data": str(a.data),
        "n_slices": len(idx) if idx else len(data),
        "clicks": None if clicks is None else asdict(clicks),
    }
    table = write_report(reports, Path(a.out), meta, spacing_known=not np.isnan(data.spacing).any())
    print(table)
    return 0


def cmd_pretrain(a: argparse.Namespace) -> int:
    from adasam.training.data import load_folder
    from adasam.training.pretrain import PretrainConfig, pretrain_sam

    data = [load_folder(d, 256) for d in a.data]
    cfg = PretrainConfig(
        out=a.out,
        minutes=a.minutes,
        max_steps=a.max_steps,
        batch_size=a.batch_size,
        seed=a.seed,
        threads=a.threads,
        init=a.init,
    )
    summary = pretrain_sam(data, cfg, _structures(a.exclude) or ())
    print(json.dumps({k: summary[k] for k in ("steps", "final_loss", "excluded")}))
    return 0


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        return {"train": cmd_train, "evaluate": cmd_evaluate, "pretrain-sam": cmd_pretrain}[
            args.command
        ](args)
    except AdaSamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
