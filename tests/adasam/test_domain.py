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
from adasam.training.data import load_dataset, native_size


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


def _with_domain(
    bundle, threshold: float, features_dim: int, features: str = "classifier"
) -> object:
    settings = DomainSettings(
        "tests", "MR", "a.u.", threshold, 10, 5, 100.0, 20.0, features=features
    )
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


def test_embedding_features_ignore_the_padding() -> None:
    import torch

    from adasam.domain import embedding_features

    emb = torch.zeros(1, 3, 4, 4)
    emb[:, :, :2, :] = torch.tensor([1.0, 2.0, 3.0])[:, None, None]  # image area
    emb[:, :, 2:, :] = 100.0  # padding below a landscape slice
    valid = np.zeros((4, 4), dtype=bool)
    valid[:2] = True
    np.testing.assert_allclose(embedding_features(emb, valid), [[1.0, 2.0, 3.0]])
    assert embedding_features(emb).shape == (1, 3)  # None: every cell
    with pytest.raises(ValueError, match="non-empty"):
        embedding_features(emb, np.zeros((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="B, C, h, w"):
        embedding_features(emb[0])


def test_domain_features_setting_is_validated() -> None:
    from adasam.commands.domain_fit import FEATURES
    from adasam.config import DOMAIN_FEATURES
    from adasam.errors import ConfigError

    assert FEATURES == DOMAIN_FEATURES  # the CLI's choices (kept torch-free) are the config's

    with pytest.raises(ConfigError, match="domain.features"):
        DomainSettings("tests", "MR", "a.u.", 1.0, 10, 5, 100.0, 20.0, features="pixels")  # type: ignore[arg-type]


def _with_embedding_domain(bundle, threshold: float) -> object:
    return _with_domain(bundle, threshold, bundle.config.sam.prompt_embed_dim, "sam-embedding")


def test_predictor_scores_the_embedding_when_the_bundle_says_so(
    tiny_bundle_dir: Path, tmp_path: Path
) -> None:
    from adasam.domain import embedding_features

    bundle = load_bundle(tiny_bundle_dir)
    image = np.random.default_rng(1).integers(0, 255, (60, 90, 3), dtype=np.uint8)
    loaded = load_bundle(save_bundle(_with_embedding_domain(bundle, 1e-6), tmp_path / "e"))
    assert loaded.config.domain.features == "sam-embedding"
    predictor = Predictor(loaded)
    pred = predictor.predict(image)
    emb, _ = predictor.embedding(image)
    frame = predictor.frame(image.shape[:2])
    expected = np.linalg.norm(embedding_features(emb, frame.embedding_valid(emb.shape[-1]))[0])
    assert pred.domain is not None and pred.domain.score == pytest.approx(expected, rel=1e-5)
    assert not pred.domain.in_domain and not any(s.found for s in pred.structures)
    wide = load_bundle(save_bundle(_with_embedding_domain(bundle, 1e12), tmp_path / "w"))
    assert Predictor(wide).predict(image).domain.in_domain


def test_domain_fit_command_refits_a_bundle_on_its_split(
    tiny_bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from adasam.cli import main
    from adasam.phantoms import write_dataset

    data = write_dataset("liver-ct", 8, seed=5, out=tmp_path / "data", size=64, progress=False)
    bundle = load_bundle(tiny_bundle_dir)
    old = save_bundle(_with_domain(bundle, 5.0, bundle.classifier.head.in_features), tmp_path / "b")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"labeled": [0, 1, 2, 3], "unlabeled": [4], "val": [5, 6, 7]}))
    args = ["domain-fit", "--bundle", str(old), "--data", str(data), "--split", str(split)]
    assert main([*args, "--features", "sam-embedding", "--quiet"]) == 0
    refit = load_bundle(old)
    assert refit.config.domain.features == "sam-embedding"
    assert (refit.config.domain.n_fit, refit.config.domain.n_val) == (5, 3)
    assert refit.domain.mean.shape == (bundle.config.sam.prompt_embed_dim,)
    assert "classifier (threshold 5.00) → sam-embedding" in capsys.readouterr().out
    # more in-domain slices at another resolution: counted, and the threshold covers them
    big = write_dataset("liver-ct", 4, seed=6, out=tmp_path / "big", size=96, progress=False)
    out2 = tmp_path / "b2"
    extra = [*args, "--features", "sam-embedding", "--extra-val", str(big), "--out", str(out2)]
    assert main([*extra, "--quiet"]) == 0
    widened = load_bundle(out2)
    assert widened.config.domain.n_val == 3 + 4
    assert widened.config.domain.threshold >= refit.config.domain.threshold
    p96 = Predictor(widened)
    big_images = load_dataset(big, native_size(big), None, widened.config.window).images
    assert big_images.shape[1:3] == (96, 96)
    assert all(p96.predict(im).domain.in_domain for im in big_images)
    (tmp_path / "empty" / "images").mkdir(parents=True)
    assert main([*extra, "--extra-val", str(tmp_path / "empty")]) == 2
    assert "no slice" in capsys.readouterr().err
    split.write_text(json.dumps({"labeled": [0, 1, 99], "val": [5]}))
    assert main(args) == 2  # a split of another dataset: one clear line, bundle unchanged
    assert "is this the bundle's training data?" in capsys.readouterr().err
    assert load_bundle(old).config.domain.n_fit == 5
