"""Out-of-domain check: the Gaussian of pooled features, its storage, and what the predictor
does with it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from adasam.bundle import load_bundle, save_bundle
from adasam.config import DomainSettings
from adasam.domain import DomainModel, fit_domain
from adasam.errors import BundleError
from adasam.predictor import Predictor


def test_mahalanobis_separates_shifted_features() -> None:
    rng = np.random.default_rng(0)
    cov = np.diag(np.linspace(0.5, 3.0, 16))
    train = rng.multivariate_normal(np.zeros(16), cov, 400)
    val = rng.multivariate_normal(np.zeros(16), cov, 100)
    model = fit_domain(train, val)
    fresh = rng.multivariate_normal(np.zeros(16), cov, 1000)
    assert (model.scores(fresh) <= model.threshold).mean() >= 0.97
    shifted = fresh + 4.0  # another domain
    assert (model.scores(shifted) > model.threshold).mean() >= 0.99


def test_score_matches_the_formula() -> None:
    model = DomainModel(np.array([1.0, 2.0]), np.array([[4.0, 0.0], [0.0, 1.0]]), 3.0)
    assert model.score(np.array([2.0, 2.0])) == pytest.approx(2.0)  # sqrt(1 * 4 * 1)


def _with_domain(bundle, threshold: float, features_dim: int) -> object:
    settings = DomainSettings("tests", "MR", "a.u.", threshold, 10, 5, 100.0, 20.0)
    model = DomainModel(np.zeros(features_dim), np.eye(features_dim), threshold)
    return replace(bundle, config=replace(bundle.config, domain=settings), domain=model)


def test_domain_round_trips_and_blocks_automatic_prompts(
    tiny_bundle_dir: Path, tmp_path: Path
) -> None:
    bundle = load_bundle(tiny_bundle_dir)
    dim = bundle.classifier.head.in_features
    image = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    out = save_bundle(_with_domain(bundle, 1e-6, dim), tmp_path / "ood")  # nothing is in
    loaded = load_bundle(out)
    assert loaded.domain is not None and loaded.domain.threshold == pytest.approx(1e-6)
    pred = Predictor(loaded).predict(image)
    assert pred.domain is not None and not pred.domain.in_domain
    assert all(not s.found and s.prompts is None for s in pred.structures)
    assert all(s.heatmap.shape == (64, 80) for s in pred.structures)  # still shown
    asked = Predictor(loaded).predict(image, prompt_out_of_domain=True)
    assert any(s.found for s in asked.structures)  # threshold 0.01: found when trusted
    wide = load_bundle(save_bundle(_with_domain(bundle, 1e12, dim), tmp_path / "in"))
    assert Predictor(wide).predict(image).domain.in_domain


def test_missing_domain_file_is_a_bundle_error(tiny_bundle_dir: Path, tmp_path: Path) -> None:
    bundle = load_bundle(tiny_bundle_dir)
    out = save_bundle(_with_domain(bundle, 5.0, bundle.classifier.head.in_features), tmp_path / "b")
    (out / "domain.safetensors").unlink()
    with pytest.raises(BundleError, match="domain"):
        load_bundle(out)
