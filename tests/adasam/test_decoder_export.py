"""The click path's fast decoder: the exported mask decoder (ONNX Runtime fp32, and OpenVINO
bf16 where this CPU has bf16) must answer as the eager PyTorch decoder does (the reference) on a
tiny bundle whose decoder LoRA is not zero, for every prompt shape a click sends; the graph is
cached by the decoder's weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adasam import export, guard
from adasam.backends import TorchBackend
from adasam.bundle import create_bundle
from adasam.config import LoraSettings
from adasam.onnx_backend import DECODER_ENGINES, DecoderRunner, available, build_exported
from adasam.predictor import Click, Predictor
from tests.conftest import tiny_config

MIN_IOU, MAX_SCORE_DIFF = 0.97, 0.02  # the accuracy guard's bar (adasam.guard)


def _bundle(seed: int = 0):
    """A tiny bundle with LoRA on the mask decoder (as the demo bundles), LoRA weights not zero
    so that merging them matters."""
    cfg = tiny_config(lora=LoraSettings(decoder=True, train_decoder=True, encoder=False))
    bundle = create_bundle(cfg, seed=seed)
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in bundle.sam.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
        for mlp in bundle.sam.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(30.0)  # logits of a few units, as a trained SAM's
    return bundle


class _FastDecoder(TorchBackend):
    """The PyTorch encoder with the exported decoder: isolates the decoder under test."""

    def __init__(self, bundle, runner: DecoderRunner) -> None:
        super().__init__(bundle)
        self.name = "torch+exported-decoder"
        self.decode = runner.decode


@pytest.fixture(scope="module")
def bundle():
    return _bundle()


@pytest.fixture(scope="module")
def decoder_path(bundle, tmp_path_factory):
    return export.export_decoder(bundle, tmp_path_factory.mktemp("cache"))


def _image(seed: int = 3) -> np.ndarray:
    return (np.random.default_rng(seed).random((90, 120, 3)) * 255).astype(np.uint8)


def test_decoder_graph_equals_the_lora_mask_decoder(bundle) -> None:
    sam = bundle.sam
    graph = export.decoder_graph(bundle)
    assert not any("lora_" in k for k in graph.state_dict())
    emb = torch.randn(1, 32, 16, 16)
    with torch.inference_mode():
        pts = (torch.rand(2, 3, 2) * 128, torch.tensor([[1, 0, 1], [1, 1, 0]]))
        sparse, dense = sam.prompt_encoder(points=pts, boxes=None, masks=torch.randn(2, 1, 64, 64))
        pe = sam.prompt_encoder.get_dense_pe()
        ref_masks, ref_iou = sam.mask_decoder.predict_masks(emb, pe, sparse, dense)
        masks, iou = graph(emb, sparse, dense)
        plain = export.decoder_graph(create_bundle(tiny_config(), seed=0))(emb, sparse, dense)
    torch.testing.assert_close(masks, ref_masks, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(iou, ref_iou, atol=1e-5, rtol=1e-4)
    assert (plain[0] - ref_masks).abs().max() > 1e-2  # the LoRA changed the answer; kept


LOGITS_ATOL = {"onnxruntime-fp32": 1e-3, "openvino-bf16": 0.2}  # bf16: 8 mantissa bits


def _compare(a, b, engine: str = "onnxruntime-fp32") -> None:
    """Scores within the guard's bar, logits within the engine's tolerance, and the masks: in
    fp32 IoU ≥ the guard's bar; in bf16 the tiny model's logits hover near the threshold (|x|
    about 0.05), so the mask is checked where the reference is beyond the tolerance: there the
    sign (inside or outside) must agree."""
    assert len(a) == len(b)
    atol = LOGITS_ATOL[engine]
    if engine != "onnxruntime-fp32":  # the tiny model's scores tie within bf16's rounding:
        # pair each answer with the reference candidate it is closest to, not by score order
        b = [min(b, key=lambda cb, ca=ca: np.abs(ca.logits - cb.logits).max()) for ca in a]
    for ca, cb in zip(a, b, strict=True):
        assert abs(ca.score - cb.score) <= MAX_SCORE_DIFF, (ca.score, cb.score)
        assert ca.mask.shape == cb.mask.shape and ca.logits.shape == cb.logits.shape
        np.testing.assert_allclose(ca.logits, cb.logits, atol=atol)
        if engine == "onnxruntime-fp32" and (cb.mask.any() or ca.mask.any()):
            assert guard.iou(ca.mask, cb.mask) >= MIN_IOU
        sure = np.abs(cb.logits) > atol
        assert sure.mean() > 0.2 and np.array_equal(ca.logits[sure] > 0, cb.logits[sure] > 0)


def _engine(name: str) -> str:
    if name == "openvino-bf16" and not available("openvino-bf16-clicks")[0]:
        pytest.skip(f"openvino-bf16: {available('openvino-bf16-clicks')[1]}")
    return name


@pytest.mark.parametrize("engine", DECODER_ENGINES)
def test_exported_decoder_matches_the_reference_on_every_click_shape(
    bundle, decoder_path, engine
) -> None:
    ref = Predictor(bundle)
    runner = DecoderRunner(decoder_path, 1, engine=_engine(engine))
    fast = Predictor(bundle, backend=_FastDecoder(bundle, runner))
    cmp = lambda a, b: _compare(a, b, engine)  # noqa: E731
    image = _image()
    box = [20.0, 15.0, 80.0, 70.0]
    first = ref.segment(image, box=box, multimask=False)[0]
    cmp(fast.segment(image, box=box), ref.segment(image, box=box))  # 3 candidates
    clicks = [Click(40, 30, True)]
    cmp(fast.segment(image, clicks=clicks), ref.segment(image, clicks=clicks))  # + pad
    many = [Click(40, 30, True), Click(70, 60, False), Click(25, 50, True)]
    for prev in (None, first.logits):
        cmp(
            [fast.refine(image, many, prev, box)], [ref.refine(image, many, prev, box)]
        )  # a refinement: clicks + previous logits + box, single mask
    # several structures in one batched call (N = 2 prompts: box, point and mask prompt each,
    # as predict decodes them)
    emb, _ = ref.embedding(image)
    frame = ref.frame(image.shape[:2])
    prompts = dict(
        boxes=np.array([box, [50.0, 40.0, 110.0, 85.0]]),
        points=np.array([[[45.0, 40.0]], [[80.0, 60.0]]]),
        labels=np.ones((2, 1)),
        mask_logits=np.stack([first.logits, -first.logits]),
        multimask=True,
    )
    got = fast._decode(emb, frame, **prompts)
    want = ref._decode(emb, frame, **prompts)
    assert len(got) == len(want) == 2
    for a, b in zip(got, want, strict=True):
        cmp(a, b)


def test_decoder_export_is_cached_and_follows_the_decoder_weights(bundle, tmp_path) -> None:
    path = export.export_decoder(bundle, tmp_path)
    stamp = path.stat().st_mtime_ns
    assert export.export_decoder(bundle, tmp_path) == path and path.stat().st_mtime_ns == stamp
    changed = _bundle()
    with torch.no_grad():
        changed.sam.mask_decoder.iou_token.weight.add_(0.5)
    other = export.export_decoder(changed, tmp_path)
    assert other != path and other.is_file()
    assert export.decoder_hash(_bundle()) == export.decoder_hash(bundle)


def test_exported_backends_run_the_exported_decoder(bundle, tmp_path) -> None:
    backend = build_exported(bundle, "onnxruntime-fp32", tmp_path, threads=1)
    assert callable(getattr(backend, "decode", None))
    calls = []
    decode = backend.decode
    backend.decode = lambda *a: calls.append(1) or decode(*a)
    p = Predictor(bundle, backend=backend)
    image = _image(5)
    got = p.refine(image, [Click(50, 40)], None, [20.0, 15.0, 80.0, 70.0])
    want = Predictor(bundle).refine(image, [Click(50, 40)], None, [20.0, 15.0, 80.0, 70.0])
    assert calls == [1]
    _compare([got], [want])


def test_openvino_bf16_clicks_runs_its_click_decoder_in_bf16_and_says_so(bundle, tmp_path) -> None:
    _engine("openvino-bf16")
    bf16 = build_exported(bundle, "openvino-bf16-clicks", tmp_path, threads=1)
    plain = build_exported(bundle, "openvino-bf16", tmp_path, threads=1)
    assert bf16.name == "openvino-bf16-clicks"
    assert (bf16.decoder_engine, plain.decoder_engine) == ("openvino-bf16", "onnxruntime-fp32")
    image, box = _image(6), [20.0, 15.0, 80.0, 70.0]
    want = Predictor(bundle).refine(image, [Click(50, 40)], None, box)
    got = Predictor(bundle, backend=bf16).refine(image, [Click(50, 40)], None, box)
    _compare([got], [want], "openvino-bf16")
    with pytest.raises(ValueError, match="unknown decoder engine"):
        DecoderRunner(export.export_decoder(bundle, tmp_path), 1, engine="tensorrt")


def test_dense_positional_encoding_is_computed_once_and_follows_its_buffer(bundle) -> None:
    p = Predictor(_bundle())
    pe = p.dense_pe()
    assert p.dense_pe() is pe  # cached
    with torch.inference_mode():
        torch.testing.assert_close(pe, p.bundle.sam.prompt_encoder.get_dense_pe())
    gauss = p.bundle.sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
    with torch.no_grad():
        gauss.mul_(2.0)
    again = p.dense_pe()
    assert again is not pe
    with torch.inference_mode():
        torch.testing.assert_close(again, p.bundle.sam.prompt_encoder.get_dense_pe())
