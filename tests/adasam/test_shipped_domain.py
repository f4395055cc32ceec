"""The shipped LiteMedSAM demo bundles know their domain: held-out phantoms of their own kind
are in it; the other phantom kind, pydicom's real CT and MR slices and a photograph are not.

Loads the LiteMedSAM checkpoint of the installed package (the one real checkpoint tests may
load) and runs the encoder once per image (about a minute on two cores in all)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adasam.imaging import load_slice
from adasam.phantoms import write_dataset
from adasam.predictor import Predictor
from adasam.training.data import load_dataset

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = ROOT / "assets" / "bundles"
EXAMPLES = ROOT / "assets" / "examples"
KINDS = {"thigh-mri": "thigh-mri", "liver-ct": "liver-ct"}
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]


def _phantoms(kind: str, n: int, seed: int, root: Path, window: str | None) -> list[np.ndarray]:
    """Phantom slices exactly as training read them (written, then loaded as a dataset)."""
    write_dataset(kind, n, seed=seed, out=root / kind, size=256, progress=False)
    return list(load_dataset(root / kind, 256, None, window).images)


def _photo() -> np.ndarray:
    """A colour 'photograph': smooth sky-to-ground gradient with a bright disc."""
    y, x = np.mgrid[0:240, 0:320]
    img = np.stack([80 + 0.4 * y, 140 + 0.2 * x, 230 - 0.5 * y], axis=2)
    img[(x - 220) ** 2 + (y - 60) ** 2 < 900] = (250, 230, 120)
    return img.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module", params=sorted(KINDS))
def shipped(request: pytest.FixtureRequest) -> tuple[str, Predictor]:
    bundle = BUNDLES / request.param
    predictor = Predictor.from_dir(bundle, cache_size=1)
    if predictor.bundle.domain is None:
        pytest.fail(f"{bundle} has no domain model")
    return request.param, predictor


def test_own_held_out_phantoms_are_in_domain(
    shipped: tuple[str, Predictor], tmp_path: Path
) -> None:
    kind, predictor = shipped
    window = predictor.bundle.config.window
    images = _phantoms(kind, 40, 4242, tmp_path, window)  # a seed nothing was chosen on
    verdicts = [predictor.predict(im).domain for im in images]
    share = np.mean([v.in_domain for v in verdicts])  # type: ignore[union-attr]
    assert share >= 0.97, share


def _assert_out(predictor: Predictor, images: list[np.ndarray]) -> None:
    for i, im in enumerate(images):
        pred = predictor.predict(im)
        assert pred.domain is not None and not pred.domain.in_domain, (i, pred.domain)
        assert not any(s.found for s in pred.structures)  # no automatic prompt outside


def test_real_scans_and_a_photograph_are_out_of_domain(shipped: tuple[str, Predictor]) -> None:
    _, predictor = shipped
    _assert_out(
        predictor,
        [
            load_slice(EXAMPLES / "CT_small.dcm").display,
            load_slice(EXAMPLES / "MR_small.dcm").display,
            _photo(),
        ],
    )


def test_the_other_phantom_kind_is_out_of_domain(
    shipped: tuple[str, Predictor], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    kind, predictor = shipped
    if kind == "thigh-mri":
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason="known gap: the thigh bundle's domain model (on its ResNet10's pooled "
                "features) accepts some liver phantoms. The SAM-embedding check "
                "(domain.features 'sam-embedding') rejects them all but also rejects thigh "
                "phantoms generated at 384² or 512², so it is not shipped",
            )
        )
    other = "liver-ct" if kind == "thigh-mri" else "thigh-mri"
    _assert_out(predictor, _phantoms(other, 12, 4242, tmp_path, predictor.bundle.config.window))


@pytest.mark.parametrize("size", [384, 512])
def test_own_phantoms_at_another_resolution_are_in_domain(
    shipped: tuple[str, Predictor], tmp_path: Path, size: int
) -> None:
    """A clinician's slice is rarely 256²: the same anatomy at 384² or 512² must pass."""
    kind, predictor = shipped
    window = predictor.bundle.config.window
    write_dataset(kind, 4, seed=4242, out=tmp_path / kind, size=size, progress=False)
    images = list(load_dataset(tmp_path / kind, size, None, window).images)
    verdicts = [predictor.predict(im).domain for im in images]
    assert all(v is not None and v.in_domain for v in verdicts), verdicts
