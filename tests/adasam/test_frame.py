from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything.utils.transforms import ResizeLongestSide

from adasam.frame import ModelFrame, resized_shape
from adasam.sam import build_sam
from tests.conftest import TINY_SAM

SHAPES = [(512, 512), (200, 300), (300, 200), (1, 1000), (999, 3), (1024, 1024), (37, 41)]


@pytest.mark.parametrize("hw", SHAPES)
@pytest.mark.parametrize("size", [256, 1024])
def test_resized_shape_matches_segment_anything(hw: tuple[int, int], size: int) -> None:
    assert resized_shape(*hw, size) == ResizeLongestSide.get_preprocess_shape(*hw, size)


@pytest.mark.parametrize("hw", SHAPES)
def test_points_and_boxes_round_trip_and_match_resize_longest_side(hw: tuple[int, int]) -> None:
    frame = ModelFrame(hw, 1024, 256)
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (7, 2)) * [hw[1], hw[0]]
    boxes = np.concatenate([pts[:3], pts[3:6]], axis=1)
    ref = ResizeLongestSide(1024)
    np.testing.assert_allclose(frame.points_to_model(pts), ref.apply_coords(pts, hw), rtol=1e-12)
    np.testing.assert_allclose(frame.boxes_to_model(boxes), ref.apply_boxes(boxes, hw), rtol=1e-12)
    np.testing.assert_allclose(
        frame.points_to_original(frame.points_to_model(pts)), pts, rtol=1e-12, atol=1e-9
    )
    np.testing.assert_allclose(
        frame.boxes_to_original(frame.boxes_to_model(boxes)), boxes, rtol=1e-12, atol=1e-9
    )


def test_corner_maps_to_content_edge() -> None:
    frame = ModelFrame((200, 300), 1024, 256)
    assert frame.resized_hw == (683, 1024)
    np.testing.assert_allclose(frame.points_to_model(np.array([300.0, 200.0])), [1024, 683])
    assert frame.mask_content_hw == (171, 256)


def test_lowres_to_original_equals_sam_postprocess() -> None:
    sam = build_sam(TINY_SAM)
    frame = ModelFrame((90, 130), TINY_SAM.image_size, TINY_SAM.mask_size)
    logits = torch.randn(2, 3, TINY_SAM.mask_size, TINY_SAM.mask_size)
    ours = frame.lowres_to_original(logits)
    ref = sam.postprocess_masks(logits, frame.resized_hw, frame.original_hw)
    assert ours.shape == (2, 3, 90, 130)
    torch.testing.assert_close(ours, ref)


def test_image_to_input_then_sam_preprocess_pads_bottom_right() -> None:
    sam = build_sam(TINY_SAM)
    frame = ModelFrame((60, 120), 128, 32)
    img = np.full((60, 120, 3), 200, np.uint8)
    x = frame.image_to_input(img)
    assert x.shape == (1, 3, 64, 128)
    torch.testing.assert_close(x, torch.full_like(x, 200.0))
    padded = sam.preprocess(x)
    assert padded.shape == (1, 3, 128, 128)
    assert torch.all(padded[:, :, 64:] == 0) and torch.all(padded[:, :, :64] != 0)
    with pytest.raises(ValueError, match="expected"):
        frame.image_to_input(np.zeros((61, 120, 3), np.uint8))


def test_map_to_mask_frame_content_and_padding() -> None:
    frame = ModelFrame((100, 200), 1024, 256)
    out = frame.map_to_mask_frame(torch.ones(1, 100, 200), pad_value=-7.0)
    assert out.shape == (1, 1, 256, 256)
    ch, cw = frame.mask_content_hw
    assert (ch, cw) == (128, 256)
    assert torch.all(out[0, 0, :ch, :cw] == 1) and torch.all(out[0, 0, ch:] == -7)


def test_mask_to_lowres_and_back_keeps_a_large_square() -> None:
    frame = ModelFrame((256, 256), 1024, 256)
    mask = np.zeros((256, 256), bool)
    mask[64:192, 32:160] = True
    low = frame.mask_to_lowres(mask)
    np.testing.assert_array_equal(low > 0.5, mask)
    back = frame.lowres_to_original(torch.from_numpy(low * 2 - 1)[None, None])[0, 0].numpy() > 0
    assert (back != mask).sum() == 0


def test_invalid_frames_raise() -> None:
    with pytest.raises(ValueError):
        ModelFrame((0, 10), 1024, 256)
    with pytest.raises(ValueError):
        ModelFrame((10, 10), 1024, 256).mask_to_lowres(np.zeros((5, 5), bool))


@pytest.mark.parametrize("side", [256, 300])
def test_a_read_only_image_converts_without_a_warning(side: int) -> None:
    """A decoded slice is read-only; at LiteMedSAM's own 256² no resize runs, and handing the
    array to torch.from_numpy printed PyTorch's non-writable warning on every `predict`. A
    fresh process, warnings as errors (PyTorch warns once per process)."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import numpy as np\n"
        "from adasam.config import SamConfig\n"
        "from adasam.frame import ModelFrame\n"
        f"image = np.zeros(({side}, {side}, 3), np.uint8)\n"
        "image.flags.writeable = False\n"
        f"x = ModelFrame.for_sam(({side}, {side}), SamConfig.litemedsam()).image_to_input(image)\n"
        "assert x.dtype.is_floating_point and x.shape[:2] == (1, 3), x.shape\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert out.returncode == 0, out.stderr[-600:]
