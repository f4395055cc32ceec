"""A fine-tuned version's out-of-domain model is refitted on its own features (tiny models)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from adasam.bundle import create_bundle, load_bundle, save_bundle
from adasam.config import ClassifierConfig, DomainSettings
from adasam.errors import ConfigError
from adasam.finetune import (
    CorrectedCase,
    FinetuneConfig,
    corrections_slices,
    domain_split,
    finetune,
    refit_domain,
)
from adasam.predictor import Predictor
from adasam.training.loop import domain_features, fit_bundle_domain
from tests.conftest import tiny_config

STRUCTURES = ["liver", "kidney"]
SIZE = 128  # the tiny bundle's training size (its SAM input)
FAST = FinetuneConfig(steps=3, batch_size=2, replay_ratio=0.0, threads=1, classifier_lr=5e-3)


def _phantom(seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A noisy dark slice with a bright square (the kind the models are fitted on)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 50, (size, size, 3)).astype(np.uint8)
    y, x = rng.integers(8, size - 32, 2)
    mask = np.zeros((size, size), bool)
    mask[y : y + 20, x : x + 20] = True
    image[mask] = 210
    return image, mask


def _out_of_kind(size: int = SIZE) -> np.ndarray:
    """A bright checkerboard: nothing like a dark slice with one bright square."""
    yy, xx = np.mgrid[:size, :size]
    board = np.where(((yy // 4) + (xx // 4)) % 2 == 0, 255, 160).astype(np.uint8)
    return np.repeat(board[:, :, None], 3, axis=2)


def _cases(seeds: range, verdict: str = "major_edits") -> list[CorrectedCase]:
    out = []
    for k in seeds:
        image, mask = _phantom(k)
        out.append(CorrectedCase(k + 1, f"case-{k}", "liver", image, mask, verdict))
    return out


@pytest.fixture(scope="module")
def parent_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny bundle with a domain model fitted on phantoms (not the fine-tune's slices)."""
    config = tiny_config(
        classifier=ClassifierConfig(backbone="resnet10", image_size=64, threshold=1e-6),
        trained=True,
    )
    bundle = create_bundle(config, seed=0)
    data = corrections_slices(
        _cases(range(100, 112)), STRUCTURES, SIZE, pseudo_label=None, rating_weights=False
    )
    settings = DomainSettings("tiny phantoms", "MR", "a.u.", 1.0, 2, 1, 30.0, 50.0)
    fitted = fit_bundle_domain(bundle, data, list(range(9)), list(range(9, 12)), settings)
    return save_bundle(fitted, tmp_path_factory.mktemp("domain") / "parent")


def test_finetune_refits_the_domain_model_on_its_own_features(parent_dir: Path, tmp_path: Path):
    cases = _cases(range(10))
    data = corrections_slices(cases, STRUCTURES, SIZE, pseudo_label=None, rating_weights=True)
    result = finetune(parent_dir, tmp_path / "child", data, FAST, version="ft1", progress=False)
    parent, child = load_bundle(parent_dir), load_bundle(result.bundle_dir)
    assert parent.domain is not None and child.domain is not None
    assert result.domain["refit"] is True and result.domain["features"] == "classifier"
    assert (child.config.domain.n_fit, child.config.domain.n_val) == (8, 2)  # 10 slices, 20 %
    assert child.config.domain.description == "tiny phantoms"  # what it saw is unchanged
    assert not np.allclose(child.domain.mean, parent.domain.mean)
    assert child.config.domain.threshold != pytest.approx(parent.config.domain.threshold)
    # fitted on the child's own features of the slices it trained on, not the parent's
    fit, _ = domain_split(data, FAST.seed)
    own = domain_features(child, data, fit, "classifier")
    assert np.allclose(child.domain.mean, own.mean(axis=0), atol=1e-5)
    assert not np.allclose(
        domain_features(parent, data, fit, "classifier").mean(axis=0), own.mean(axis=0)
    )
    # the production path: its own training slices pass, an out-of-kind image does not
    predictor = Predictor(child)
    accepted = [predictor.predict(c.image).domain.in_domain for c in cases]
    assert np.mean(accepted) >= 0.8 and result.domain["own_domain_rate"] >= 0.8
    fresh = [predictor.predict(c.image).domain.in_domain for c in _cases(range(200, 210))]
    assert np.mean(fresh) >= 0.7  # unseen slices of the same kind mostly pass too
    verdict = predictor.predict(_out_of_kind()).domain
    assert not verdict.in_domain and verdict.score > child.config.domain.threshold


def test_too_few_slices_keep_the_parents_model_and_say_why(parent_dir: Path):
    parent = load_bundle(parent_dir)
    one = corrections_slices(
        _cases(range(1)), STRUCTURES, SIZE, pseudo_label=None, rating_weights=True
    )
    same, info = refit_domain(parent, one, seed=0)
    assert (
        same is parent
        and info["refit"] is False
        and info["kept_parent"]
        and "too few" in info["reason"]
    )


def test_domain_split_counts_a_repeated_slice_once_and_splits_by_subject():
    cases = _cases(range(5), verdict="reject")  # each slice drawn three times
    data = corrections_slices(cases, STRUCTURES, SIZE, pseudo_label=None, rating_weights=True)
    assert len(data) == 15
    fit, val = domain_split(data, seed=0)
    assert len(fit) + len(val) == 5 and len(val) == 1
    assert not {data.subjects[i] for i in fit} & {data.subjects[i] for i in val}
    assert domain_split(data, seed=0) == (fit, val)  # seeded


def test_a_job_trains_corrective_clicks_unless_told_not_to(parent_dir: Path, tmp_path: Path):
    data = corrections_slices(
        _cases(range(4)), STRUCTURES, SIZE, pseudo_label=None, rating_weights=False
    )
    with_clicks = finetune(
        parent_dir, tmp_path / "clicks", data, replace(FAST, steps=2), version="c", progress=False
    )
    without = finetune(
        parent_dir,
        tmp_path / "boxes",
        data,
        replace(FAST, steps=2, click_rounds=0),
        version="b",
        progress=False,
    )
    assert FAST.click_rounds == 2  # on by default: a job keeps what clicks learnt
    assert all(row.get("click", 0.0) > 0 for row in with_clicks.history)
    assert all("click" not in row for row in without.history)


@pytest.mark.parametrize("bad", [{"click_rounds": -1}, {"click_items": 0}])
def test_bad_click_settings_are_refused(bad: dict):
    with pytest.raises(ConfigError, match="click_rounds must be"):
        FinetuneConfig(**bad)
