"""The OpenVINO workspaces follow the model in use: when another exported backend runs, the
previous one's are released (never during one of its inferences), and it answers the same."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import numpy as np
import pytest

from adasam.bundle import create_bundle, save_bundle
from adasam.onnx_backend import OnnxBackend, available, build_exported
from adasam.predictor import Predictor
from adasam.workspace import ACTIVE, ActiveBackend, BusyCount
from tests.conftest import tiny_config


class Fake:
    def __init__(self) -> None:
        self.released = 0

    def release_memory(self) -> int:
        self.released += 1
        return 1


def test_the_previous_backend_is_released_when_another_one_runs() -> None:
    active = ActiveBackend()
    a, b = Fake(), Fake()
    assert active.use(a) == 0  # nothing before
    assert active.use(a) == 0 and a.released == 0  # the same one again: nothing released
    assert active.use(b) == 1 and a.released == 1 and b.released == 0
    assert active.current() is b
    assert active.use(a) == 1 and b.released == 1


def test_a_backend_that_is_gone_is_not_released() -> None:
    active = ActiveBackend()
    a = Fake()
    active.use(a)
    del a
    gc.collect()
    assert active.current() is None
    assert active.use(Fake()) == 0


def test_a_busy_workspace_is_not_released() -> None:
    busy = BusyCount()
    calls: list[int] = []
    with busy:
        assert not busy.release_if_idle(lambda: calls.append(1))
    assert calls == [] and busy.releases == 0
    assert busy.release_if_idle(lambda: calls.append(1))
    assert calls == [1] and busy.releases == 1


def test_release_waits_for_nothing_and_an_inference_waits_for_a_release() -> None:
    """A release runs under the count's lock: an inference starting meanwhile waits for it."""
    busy = BusyCount()
    order: list[str] = []
    started = threading.Event()

    def slow_release() -> None:
        started.set()
        threading.Event().wait(0.2)
        order.append("released")

    def infer() -> None:
        started.wait()
        with busy:
            order.append("inferred")

    t = threading.Thread(target=infer)
    t.start()
    busy.release_if_idle(slow_release)
    t.join()
    assert order == ["released", "inferred"]


needs_openvino = pytest.mark.skipif(
    not available("openvino-fp32")[0], reason=available("openvino-fp32")[1]
)


@needs_openvino
def test_two_openvino_models_release_each_others_workspaces_and_answer_the_same(
    tmp_path: Path,
) -> None:
    dirs = [
        save_bundle(create_bundle(tiny_config(name=f"m{i}"), seed=i), tmp_path / f"b{i}")
        for i in range(2)
    ]

    def factory(bundle):
        return build_exported(bundle, "openvino-fp32", tmp_path / "cache", threads=1)

    first = Predictor.from_dir(dirs[0], backend=factory)
    image = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)
    before = first.predict(image)
    second = Predictor.from_dir(dirs[1], backend=factory)  # building it releases the first
    backend = first.backend
    assert isinstance(backend, OnnxBackend) and ACTIVE.current() is second.backend
    assert backend._encoder.busy.releases == 1  # type: ignore[union-attr]
    assert backend._classifier.busy.releases == 1  # type: ignore[union-attr]
    second.predict(image[::-1].copy())
    first._cache.clear()
    again = first.predict(image)  # re-allocates its workspace, answers the same
    assert ACTIVE.current() is backend
    for sa, sb in zip(before.structures, again.structures, strict=True):
        for ca, cb in zip(sa.candidates, sb.candidates, strict=True):
            np.testing.assert_array_equal(ca.logits, cb.logits)
    assert second.backend._encoder.busy.releases == 1  # type: ignore[union-attr]
