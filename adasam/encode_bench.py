"""``python -m adasam bench --training-encode``: what computes a training set's embeddings.

Per slice, on LiteMedSAM's frozen encoder (the thigh demo bundle, loaded as training loads it)
and held-out phantom slices: the eager PyTorch encoder against its exported fp32 graph on each
engine of :mod:`adasam.fast_encode`, medians over the slices, the ratio measured in the same
run, the largest relative difference, and the one-off cost of exporting the graph.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SEED = 4343
"""Phantom seed of the slices encoded (not a training, validation or simulate seed)."""


def _inputs(bundle, n: int, size: int) -> list[torch.Tensor]:
    from adasam.frame import ModelFrame
    from adasam.guard import phantom_display
    from adasam.phantoms import generate

    out = []
    for case in generate("thigh-mri", n, SEED, size):
        image = phantom_display(case.image, "thigh-mri")
        frame = ModelFrame.for_sam(image.shape[:2], bundle.config.sam)
        out.append(bundle.sam.preprocess(frame.image_to_input(image, "cpu")))
    return out


def _median_ms(fn, inputs: list[torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
    fn(inputs[0])  # warm-up
    times, outs = [], []
    for x in inputs:
        start = time.perf_counter()
        outs.append(fn(x))
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times)), outs


def report(args: argparse.Namespace) -> int:
    from adasam.bundle import load_bundle
    from adasam.fast_encode import ExportedEncoder, export_encoder, relative_difference
    from adasam.onnx_backend import available
    from adasam.settings import DEMO_BUNDLES

    bundle = load_bundle(DEMO_BUNDLES["thigh-mri"])
    inputs = _inputs(bundle, max(args.runs, 2), args.size)
    encoder = bundle.sam.image_encoder
    with torch.inference_mode():
        eager_ms, eager = _median_ms(encoder, inputs)
    threads = torch.get_num_threads()
    print(
        f"training embeddings, LiteMedSAM encoder, {len(inputs)} phantom slices (seed {SEED}), "
        f"{threads} threads: torch (eager) {eager_ms:.0f} ms/slice",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = export_encoder(encoder, bundle.config.sam.image_size, Path(tmp))
        export_s = time.perf_counter() - start
        print(f"  export of the fp32 graph (once per encoder): {export_s:.1f} s", flush=True)
        for engine in ("openvino-fp32", "onnxruntime-fp32"):
            ok, why = available(engine)
            if not ok:
                print(f"  {engine}: not measured ({why})", flush=True)
                continue
            fast = ExportedEncoder(path, engine, threads)
            ms, got = _median_ms(fast, inputs)
            diff = max(relative_difference(a, b) for a, b in zip(got, eager, strict=True))
            print(
                f"  {engine}: {ms:.0f} ms/slice, ×{eager_ms / ms:.2f} the eager encoder, "
                f"largest relative difference {diff:.1e}",
                flush=True,
            )
    return 0
