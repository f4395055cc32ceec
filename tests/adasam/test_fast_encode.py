"""Training's embeddings from the frozen encoder's exported fp32 graph: the same embeddings as
the eager encoder, the graph exported once into the store's folder, a disagreeing or failing
graph replaced by the eager encoder with the reason printed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adasam.bundle import create_bundle, load_bundle, save_bundle
from adasam.config import LoraSettings
from adasam.embedding_store import EmbeddingStore, encoder_identity
from adasam.fast_encode import GRAPH_NAME, ExportedEncoder, resolve_engine
from adasam.onnx_backend import available
from tests.conftest import tiny_config

ENGINES = ["onnxruntime-fp32"] + (["openvino-fp32"] if available("openvino-fp32")[0] else [])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory):
    config = tiny_config(lora=LoraSettings(r=4, encoder=False, decoder=True))
    path = save_bundle(create_bundle(config, seed=6), tmp_path_factory.mktemp("fe") / "b")
    return load_bundle(path)  # as training loads it: peft layers in the decoder only


def _images(seed: int, n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((70, 90, 3)) * 255).astype(np.uint8) for _ in range(n)]


def _store(bundle, root: Path) -> EmbeddingStore:
    return EmbeddingStore(root, encoder_identity(bundle.config, bundle.sam))


@pytest.mark.parametrize("engine", ENGINES)
def test_the_exported_graph_gives_the_eager_embeddings(bundle, tmp_path: Path, engine) -> None:
    images = _images(1)
    eager = _store(bundle, tmp_path / "eager").fill(
        bundle.sam, bundle.config, images, progress=False, engine="torch"
    )
    store = _store(bundle, tmp_path / "fast")
    fast = store.fill(bundle.sam, bundle.config, images, progress=False, engine=engine)
    assert (store.folder / GRAPH_NAME).is_file()
    assert not (tmp_path / "eager" / store.folder.name / GRAPH_NAME).exists()  # torch: no graph
    np.testing.assert_allclose(fast, eager, rtol=0, atol=1e-4 * np.abs(eager).max())


def test_the_graph_is_exported_once_per_encoder(bundle, tmp_path: Path, monkeypatch) -> None:
    store = _store(bundle, tmp_path)
    store.fill(bundle.sam, bundle.config, _images(2), progress=False, engine="onnxruntime-fp32")

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr("adasam.export._export", no_export)
    out = store.fill(
        bundle.sam, bundle.config, _images(3), progress=False, engine="onnxruntime-fp32"
    )
    assert out.shape[0] == 3


def test_a_graph_that_disagrees_is_not_used_and_says_so(
    bundle, tmp_path: Path, monkeypatch, capsys
) -> None:
    images = _images(4)
    eager = _store(bundle, tmp_path / "eager").fill(
        bundle.sam, bundle.config, images, progress=False, engine="torch"
    )
    real = ExportedEncoder.__call__
    monkeypatch.setattr(ExportedEncoder, "__call__", lambda self, x: real(self, x) * 1.01)
    got = _store(bundle, tmp_path / "fast").fill(
        bundle.sam, bundle.config, images, progress=False, engine="onnxruntime-fp32"
    )
    assert "differs from the eager one" in capsys.readouterr().out
    np.testing.assert_array_equal(got, eager)


def test_a_failing_export_falls_back_to_the_eager_encoder_and_says_why(
    bundle, tmp_path: Path, monkeypatch, capsys
) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("exporter broke")

    monkeypatch.setattr("adasam.embedding_store.export_encoder", broken)
    images = _images(5)
    got = _store(bundle, tmp_path).fill(bundle.sam, bundle.config, images, progress=False)
    assert "failed (RuntimeError: exporter broke); using the eager encoder" in (
        capsys.readouterr().out
    )
    eager = _store(bundle, tmp_path / "e").fill(
        bundle.sam, bundle.config, images, progress=False, engine="torch"
    )
    np.testing.assert_array_equal(got, eager)


def test_engine_names() -> None:
    assert resolve_engine("torch") == "torch"
    assert resolve_engine("auto") == ("openvino-fp32" if len(ENGINES) == 2 else "onnxruntime-fp32")
    with pytest.raises(ValueError, match="unknown encoder engine 'int8'"):
        resolve_engine("int8")


def test_a_training_config_refuses_an_unknown_engine() -> None:
    from adasam.errors import ConfigError
    from adasam.training.train_config import TrainConfig

    with pytest.raises(ConfigError, match="encode_engine must be"):
        TrainConfig(data="d", out="o", encode_engine="bf16")  # type: ignore[arg-type]
    assert TrainConfig(data="d", out="o").encode_engine == "auto"
