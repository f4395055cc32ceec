"""Training with a frozen encoder: embeddings computed once, stored, reused; the sam-embedding
classifier and its gradient-feedback path; the domain model fitted at the end of training."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from adasam.bundle import load_bundle
from adasam.embedding_store import EmbeddingStore, encoder_identity
from adasam.predictor import Predictor
from adasam.training.data import load_dataset
from adasam.training.loop import TrainConfig, train
from adasam.training.model import AdaSamNet, PromptPlan
from tests.conftest import TINY_SAM


@pytest.fixture(autouse=True)
def _tiny_sam(monkeypatch: pytest.MonkeyPatch) -> None:
    import adasam.training.loop as loop

    monkeypatch.setattr(loop, "SamConfig", lambda: TINY_SAM)


def _cfg(data: Path, out: Path, cache: Path, **kw: object) -> TrainConfig:
    base = dict(
        data=str(data),
        out=str(out),
        labeled="6",
        size=64,
        steps_per_epoch=2,
        max_steps=2,
        batch_size=2,
        unlabeled_batch_size=2,
        val_max=3,
        backbone="sam-embedding",
        val_fraction=0.34,
        warmup_steps=1,
        sam="small",
        lora_encoder="off",
        train_decoder=True,
        embedding_cache=str(cache),
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_frozen_encoder_embeddings_are_computed_once(
    thigh_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "emb"
    bundle, _ = train(_cfg(thigh_dir, tmp_path / "a", cache), progress=False)
    (folder,) = cache.iterdir()
    assert folder.name == encoder_identity(bundle.config, bundle.sam)
    assert len(list(folder.glob("*.npy"))) == 24  # every slice once
    assert not any(p.requires_grad for p in bundle.sam.image_encoder.parameters())
    # a second run (another learning rate) reads them all from the store: no encoder call
    from segment_anything.modeling import ImageEncoderViT

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the encoder ran although every embedding was stored")

    monkeypatch.setattr(ImageEncoderViT, "forward", refuse)
    b_cfg = _cfg(thigh_dir, tmp_path / "b", cache, lr=2e-3, domain_features="sam-embedding")
    _, state = train(b_cfg, progress=False)
    assert state.step == 2
    saved = load_bundle(tmp_path / "b")
    record = saved.config.metrics
    # the best epoch is chosen on val_score: Dice where present, no false positive where absent
    assert 0.0 <= record["val_score"] <= 1.0 and "val_score_vastus_lateralis" in record
    assert saved.domain is not None and saved.config.domain is not None
    assert "synthetic thigh-mri phantoms only" in saved.config.domain.description
    # the embedding-based domain Gaussian, fitted on the stored embeddings (no encoder call)
    assert saved.config.domain.features == "sam-embedding"
    assert saved.domain.mean.shape == (bundle.config.sam.prompt_embed_dim,)
    # fine-tuning a bundle that has a domain model saves (it once failed at the first save)
    _, state = train(
        replace(_cfg(thigh_dir, tmp_path / "c", cache), init_bundle=str(tmp_path / "b")),
        progress=False,
    )
    assert state.step == 2 and load_bundle(tmp_path / "c").config.domain is not None


def test_stored_embedding_equals_a_fresh_one(thigh_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "emb"
    bundle, _ = train(_cfg(thigh_dir, tmp_path / "a", cache), progress=False)
    data = load_dataset(thigh_dir, 64)
    store = EmbeddingStore(cache, encoder_identity(bundle.config, bundle.sam))
    fresh, _ = Predictor(bundle).embedding(data.images[3])
    np.testing.assert_allclose(store.get(data.images[3]), fresh[0].numpy(), atol=1e-5)


def test_feedback_reaches_the_embedding_head(thigh_dir: Path, tmp_path: Path) -> None:
    """The segmentation loss alone gives the sam-embedding classifier gradient through the
    CAM mask prompt; --no-feedback (SAM-Mix) cuts it."""
    from adasam.bundle import create_bundle
    from adasam.config import BundleConfig, ClassifierConfig, LoraSettings
    from adasam.training.losses import dice_bce_per_item

    data = load_dataset(thigh_dir, 64)
    for feedback in (True, False):
        cfg = BundleConfig(
            name="t",
            structures=data.structures,
            sam=TINY_SAM,
            lora=LoraSettings(r=2, encoder=False, decoder=True),
            classifier=ClassifierConfig(backbone="sam-embedding", hidden=16),
        )
        bundle = create_bundle(cfg, seed=0)
        net = AdaSamNet(bundle, 64, feedback=feedback)
        idx = np.flatnonzero(data.present[:, 0])[:2]
        x = torch.from_numpy(data.images[idx]).permute(0, 3, 1, 2).float()
        masks = torch.from_numpy(data.masks(idx))
        plan = PromptPlan(np.array([[0, 0], [1, 0]]), np.zeros(2, bool))
        with torch.no_grad():
            emb = net.encode(x)
        # a CAM box needs a CAM region: make the head's CAM positive everywhere
        with torch.no_grad():
            bundle.classifier.head.weight.abs_()
        out = net(x, plan, masks, np.random.default_rng(0), embedding=emb)
        target = masks[torch.as_tensor(plan.pairs[out.kept, 0]), 0][:, None].float()
        dice_bce_per_item(out.full[:, :1], target).sum().backward()
        grads = [p.grad for p in bundle.classifier.body.parameters()]
        total = sum(float(g.abs().sum()) for g in grads if g is not None)
        assert (total > 0) == feedback, (feedback, total)


def test_classifier_warmup_and_init_classifier(thigh_dir: Path, tmp_path: Path) -> None:
    """--classifier-warmup trains the head alone on the stored embeddings (its weights
    move, SAM's do not); --init-classifier starts from another bundle's classifier, and a
    mismatching one is a clear error."""
    import dataclasses

    from adasam.errors import ConfigError
    from adasam.training.data import make_split
    from adasam.training.loop import cached_embeddings, initial_bundle, warm_up_classifier

    cache = tmp_path / "emb"
    cfg = _cfg(thigh_dir, tmp_path / "a", cache, classifier_warmup=3)
    data = load_dataset(thigh_dir, 64)
    split = make_split(data.subjects, data.has_mask, cfg.labeled, cfg.seed, cfg.val_fraction, 0.0)
    bundle = initial_bundle(cfg, data.structures)
    emb, _ = cached_embeddings(bundle, data, cfg, progress=False)
    before_cls = [p.detach().clone() for p in bundle.classifier.parameters()]
    before_sam = [p.detach().clone() for p in bundle.sam.mask_decoder.parameters()]
    warm_up_classifier(AdaSamNet(bundle, 64), data, split, emb, cfg, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before_cls, bundle.classifier.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before_sam, bundle.sam.mask_decoder.parameters()))

    train(_cfg(thigh_dir, tmp_path / "src", cache), progress=False)
    again = initial_bundle(
        dataclasses.replace(cfg, init_classifier=str(tmp_path / "src")), data.structures
    )
    for a, b in zip(load_bundle(tmp_path / "src").classifier.state_dict().values(),
                    again.classifier.state_dict().values()):  # fmt: skip
        assert torch.allclose(a.float(), b.float())
    other = dataclasses.replace(cfg, backbone="resnet10", init_classifier=str(tmp_path / "src"))
    with pytest.raises(ConfigError, match="does not match"):
        initial_bundle(other, data.structures)


def test_predictor_writes_what_it_computed_to_a_writable_store(
    thigh_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "emb"
    bundle, _ = train(_cfg(thigh_dir, tmp_path / "a", cache, max_steps=1), progress=False)
    other = EmbeddingStore(tmp_path / "other", encoder_identity(bundle.config, bundle.sam))
    image = np.ascontiguousarray(load_dataset(thigh_dir, 64).images[0])
    assert other.get(image) is None
    emb, cached = Predictor(bundle, embedding_store=other).embedding(image)
    assert not cached
    np.testing.assert_allclose(other.get(image), emb[0].numpy(), atol=1e-6)


def test_batchnorm_statistics_stay_fixed_when_frozen() -> None:
    from adasam.classifier import StructureClassifier
    from adasam.config import ClassifierConfig
    from adasam.training.loop import batchnorm_frozen, freeze_batchnorm

    net = StructureClassifier(ClassifierConfig(backbone="resnet10", image_size=64), 2)
    net.train()
    assert freeze_batchnorm(net) > 0
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    net(torch.randn(2, 3, 64, 64) * 5 + 3).sum().backward()
    after = {k: v for k, v in net.state_dict().items() if "running" in k}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net.training  # the rest of the network still trains
    assert any(p.grad is not None for n, p in net.named_parameters() if "bn" in n)
    cfg = _cfg(Path("d"), Path("o"), Path("c"))
    assert not batchnorm_frozen(cfg)  # a fresh classifier learns its statistics
    assert batchnorm_frozen(replace(cfg, init_bundle="b"))
    assert batchnorm_frozen(replace(cfg, init_classifier="b"))
    assert not batchnorm_frozen(replace(cfg, init_bundle="b", freeze_bn="off"))
    assert batchnorm_frozen(replace(cfg, freeze_bn="on"))
