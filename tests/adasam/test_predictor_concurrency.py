"""The predictor runs concurrent calls in parallel (its lock guards only the embedding cache),
so the studio's ``ADASAM_MODEL_CONCURRENCY`` (the Gradio queue's limit) is the only limit."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from adasam.backends import TorchBackend
from adasam.bundle import load_bundle
from adasam.predictor import Predictor


class _Rendezvous(TorchBackend):
    """Encodes only when two calls are inside ``encode`` at the same time (a barrier); a
    predictor that serialises its calls breaks the barrier (after ``timeout`` seconds)."""

    def __init__(self, *args: object, timeout: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.barrier = threading.Barrier(2, timeout=timeout)
        inner = self.encode

        def encode(x: torch.Tensor) -> torch.Tensor:
            self.barrier.wait()
            return inner(x)

        self.encode = encode  # type: ignore[method-assign]


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)


def _two_at_once(predictor: Predictor) -> list[BaseException]:
    errors: list[BaseException] = []

    def call(seed: int) -> None:
        try:
            predictor.segment(_image(seed), box=(8, 8, 40, 40))
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def test_two_calls_run_at_the_same_time(tiny_bundle_dir: Path) -> None:
    bundle = load_bundle(tiny_bundle_dir)
    backend = _Rendezvous(bundle, "cpu", timeout=60.0)
    predictor = Predictor(bundle, cache_size=4, backend=backend)
    assert _two_at_once(predictor) == []
    assert predictor.embedding(_image(1))[1] and predictor.embedding(_image(2))[1]  # both cached


def test_the_rendezvous_detects_serialised_calls(tiny_bundle_dir: Path) -> None:
    """The check can fail: calls serialised by a lock around the model break the barrier."""
    bundle = load_bundle(tiny_bundle_dir)
    backend = _Rendezvous(bundle, "cpu", timeout=2.0)
    predictor = Predictor(bundle, cache_size=4, backend=backend)
    lock = threading.Lock()
    inner = predictor.segment

    def serialised(*args: object, **kwargs: object) -> object:
        with lock:
            return inner(*args, **kwargs)  # type: ignore[arg-type]

    predictor.segment = serialised  # type: ignore[method-assign]
    errors = _two_at_once(predictor)
    assert errors and all(isinstance(e, threading.BrokenBarrierError) for e in errors)
