"""``python -m adasam bench``: our pipeline against segment-anything's plain ``SamPredictor``.

Both run the same model (the LoRA-injected SAM; fresh LoRA leaves the output unchanged) on the
same slice and the same box + mask prompt; each figure is the median of ``--runs`` runs after
one warm-up. Reported per SAM size: our per-stage latency inside the whole pipeline, our
encoder alone (cache cleared each run: resize + normalise + ViT), SamPredictor's ``set_image`` and
``predict``, their ratio, and a second prompt on an already-encoded slice.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from segment_anything import SamPredictor

from adasam.bundle import create_bundle
from adasam.config import BundleConfig, SamConfig
from adasam.predictor import Predictor


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def test_slice(size: int, seed: int = 0) -> np.ndarray:
    """A noisy bright ellipse on a dark background, uint8 ``(size, size, 3)``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    disk = ((xx - 0.45) / 0.25) ** 2 + ((yy - 0.55) / 0.18) ** 2 < 1
    img = np.where(disk, 170.0, 60.0) + rng.normal(0, 12, (size, size))
    return np.repeat(img.clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)


def bench_one(label: str, sam_cfg: SamConfig, image: np.ndarray, runs: int) -> dict[str, float]:
    bundle = create_bundle(BundleConfig(name=f"bench-{label}", structures=("target",), sam=sam_cfg))
    ours = Predictor(bundle, "cpu", cache_size=4)
    box = np.array([0.2, 0.37, 0.7, 0.73]) * image.shape[0]
    frame = ours.frame(image.shape[:2])
    first = ours.predict(image).structure("target")
    mask_logits = (
        first.prompts.mask_logits
        if first.prompts
        else np.zeros((frame.mask_size, frame.mask_size), np.float32)
    )

    stage_runs: dict[str, list[float]] = {}
    for _ in range(runs):
        ours.clear_cache()
        t = ours.predict(image).timings_ms
        for k, v in t.items():
            stage_runs.setdefault(k, []).append(v)
    stages = {k: statistics.median(v) for k, v in stage_runs.items() if k != "load"}

    def encode_only() -> object:
        ours.clear_cache()
        return ours.embedding(image)

    encode = median_ms(encode_only, runs)
    ref = SamPredictor(bundle.sam)
    ref_set = median_ms(lambda: ref.set_image(image), runs)
    ref.set_image(image)
    box_model = ref.transform.apply_boxes(box[None], image.shape[:2])
    assert np.allclose(box_model, frame.boxes_to_model(box[None]))

    def ref_predict() -> object:
        return ref.predict(box=box, mask_input=mask_logits[None], multimask_output=True)

    ref_pred = median_ms(ref_predict, runs)
    ours_second = median_ms(lambda: ours.segment(image, box=box, mask_logits=mask_logits), runs)
    return {
        "encode": encode,
        "decode": stages["decode"],
        "classify": stages["classify"],
        "cam": stages["cam"],
        "prompts": stages["prompts"],
        "total": sum(stages.values()),
        "ref_set_image": ref_set,
        "ref_predict": ref_pred,
        "second_prompt": ours_second,
    }


def format_table(rows: dict[str, dict[str, float]], size: int, runs: int) -> str:
    lines = [
        f"slice {size}×{size}, CPU, {torch.get_num_threads()} threads, median of {runs} runs (ms)",
        "",
        "| SAM | classify | cam | prompts | encode (ours) | set_image (SamPredictor) | ratio "
        "| decode (ours) | predict (SamPredictor) | ratio | 2nd prompt, cached (ours) "
        "| whole pipeline (ours) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows.items():
        lines.append(
            f"| {label} | {r['classify']:.1f} | {r['cam']:.1f} | {r['prompts']:.1f} "
            f"| {r['encode']:.1f} | {r['ref_set_image']:.1f} "
            f"| {r['encode'] / r['ref_set_image']:.2f} | {r['decode']:.1f} "
            f"| {r['ref_predict']:.1f} | {r['decode'] / r['ref_predict']:.2f} "
            f"| {r['second_prompt']:.1f} | {r['total']:.1f} |"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image = test_slice(args.size)
    configs = {"small (256 px, dim 96, depth 4)": SamConfig()}
    if not args.skip_vit_b:
        configs["vit_b (1024 px, untrained)"] = SamConfig.public("vit_b")
    rows = {}
    for label, cfg in configs.items():
        print(f"benchmarking {label} …", flush=True)
        rows[label] = bench_one(label, cfg, image, args.runs)
    print(format_table(rows, args.size, args.runs))
    return 0
