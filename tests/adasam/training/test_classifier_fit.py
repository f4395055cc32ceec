"""``fit-classifier``: the classifier head refitted on cached embeddings, SAM untouched, the
domain check and thresholds refitted, a new version written; clear errors where it can't run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import adasam.training.classifier_fit as cf
from adasam.bundle import load_bundle
from adasam.cli import main
from adasam.training.classifier_fit_config import ClassifierFitConfig
from adasam.training.data import load_dataset
from tests.adasam.training.conftest import train_tiny_start


def _train_start(data: Path, root: Path, backbone: str) -> Path:
    return train_tiny_start(data, root / backbone, backbone, root / "emb")


@pytest.fixture(scope="module")
def start_bundle(thigh_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step trained tiny bundle: sam-embedding classifier, frozen encoder."""
    return _train_start(thigh_dir, tmp_path_factory.mktemp("fit"), "sam-embedding")


def _adapter(bundle_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in load_bundle(bundle_dir).sam.state_dict().items()}


def test_refit_writes_a_new_version_with_only_the_classifier_and_domain_changed(
    start_bundle: Path, thigh_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "refit"
    args = ["fit-classifier", "--bundle", str(start_bundle), "--data", str(thigh_dir)]
    args += ["--out", str(out), "--embedding-cache", str(start_bundle.parent / "emb")]
    assert main([*args, "--epochs", "3", "--batch-size", "4", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "kept epoch" in printed and "calibrated on" in printed
    old, new = load_bundle(start_bundle), load_bundle(out)
    assert new.config.version == str(int(old.config.version) + 1)
    assert new.config.parent_version == old.config.version
    record = new.config.training["classifier_fit"]
    assert record["epochs_done"] == 3 and record["n_val"] > 0
    history = (out / "training" / cf.HISTORY_FILE).read_text().splitlines()
    assert [json.loads(h)["epoch"] for h in history] == [0, 1, 2, 3]
    assert (out / "training" / cf.PLOT_FILE).stat().st_size > 1000
    assert (out / "training" / "split.json").is_file()  # carried over: later runs need it
    assert new.config.training["calibration"]["n_slices"] == record["n_val"]
    # SAM untouched, bit for bit
    a, b = _adapter(start_bundle), _adapter(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if record["best_epoch"] > 0:
        changed = any(
            not torch.equal(p, q)
            for p, q in zip(old.classifier.parameters(), new.classifier.parameters(), strict=True)
        )
        assert changed
        # the domain Gaussian models the classifier's pooled features: refitted on the new ones
        assert not np.allclose(old.domain.mean, new.domain.mean)
    assert load_bundle(start_bundle).config.version == old.config.version  # start kept


def test_the_fit_learns_presence_from_the_embedding(
    start_bundle: Path, thigh_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embeddings in which channel 0 lights up over the structure: from fresh weights the head
    must learn to tell present from absent on the validation slices."""
    bundle = load_bundle(start_bundle)
    size = int(bundle.config.training.get("size", 64))
    data = load_dataset(thigh_dir, size, bundle.config.structures, bundle.config.window)
    emb_cfg = ClassifierFitConfig(
        bundle=str(start_bundle), data=str(thigh_dir), out="x",
        embedding_cache=str(start_bundle.parent / "emb"), quiet=True,
    )  # fmt: skip
    real, _ = cf._embeddings(bundle, data, np.arange(len(data)), emb_cfg)
    e = real.shape[-1]
    fake = torch.zeros_like(real)
    masks = torch.from_numpy(data.masks(np.arange(len(data)))).float()  # (N, T, S, S)
    small = torch.nn.functional.adaptive_max_pool2d(masks, e)
    fake[:, : small.shape[1]] = 4.0 * small
    original = cf._embeddings
    monkeypatch.setattr(cf, "_embeddings", lambda *a: (fake, original(*a)[1]))
    cfg = ClassifierFitConfig(
        bundle=str(start_bundle), data=str(thigh_dir), out=str(tmp_path / "o"),
        embedding_cache=str(start_bundle.parent / "emb"), epochs=25, batch_size=4, lr=3e-3,
        reinit=True, calibrate=False, quiet=True,
    )  # fmt: skip
    run = cf.fit_classifier(cfg)
    assert run.best.auroc > 0.95, run.history
    assert run.best.p_present - run.best.p_absent > 0.3
    assert run.best.cam_dice > run.start.cam_dice


def test_refused_with_a_clear_line_where_it_cannot_run(
    thigh_dir: Path, tmp_path: Path, start_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resnet = _train_start(thigh_dir, tmp_path, "resnet10")
    args = ["fit-classifier", "--data", str(thigh_dir), "--out", str(tmp_path / "o"), "--quiet"]
    assert main([*args, "--bundle", str(resnet)]) == 2
    assert "retrain it" in capsys.readouterr().err
    split = tmp_path / "split.json"
    data = load_dataset(thigh_dir, 64)
    both = [int(i) for i in np.flatnonzero(data.present.all(axis=1))]
    split.write_text(json.dumps({"labeled": [0, 1, 2, 3], "val": both[:2]}))
    assert main([*args, "--bundle", str(start_bundle), "--split", str(split)]) == 2
    assert "all one class" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(Exception, match="epochs must be positive"):
        ClassifierFitConfig(bundle="b", data="d", out="o", epochs=0)
