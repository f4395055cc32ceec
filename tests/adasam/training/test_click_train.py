"""``train-clicks``: click training of a trained bundle on cached embeddings (tiny SAM)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from adasam.bundle import load_bundle, read_config
from adasam.cli import main
from adasam.errors import ConfigError
from adasam.training import click_train
from adasam.training.click_config import ClickTrainConfig
from adasam.training.click_train import ValScore, train_clicks
from tests.adasam.training.conftest import train_tiny_start
from tests.conftest import TINY_SAM


@pytest.fixture(autouse=True)
def _tiny_sam(monkeypatch: pytest.MonkeyPatch) -> None:
    import adasam.training.loop as loop

    monkeypatch.setattr(loop, "SamConfig", lambda: TINY_SAM)


@pytest.fixture(scope="module")
def start_bundle(thigh_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step trained tiny bundle with a frozen encoder (its split names thigh_dir's slices)."""
    root = tmp_path_factory.mktemp("clicks")
    return train_tiny_start(thigh_dir, root / "start", "resnet10", root / "emb")


def _cfg(start: Path, data: Path, out: Path, **kw: object) -> ClickTrainConfig:
    base: dict[str, object] = dict(
        bundle=str(start), data=str(data), out=str(out),
        embedding_cache=str(start.parent / "emb"), steps=4, items=2, rounds=2, grad_rounds=1,
        distill_boxes=1, val_every=2, val_items=3, val_clicks=2, quiet=True,
    )  # fmt: skip
    base.update(kw)
    return ClickTrainConfig(**base)  # type: ignore[arg-type]


def _trained(bundle_dir: Path) -> dict[str, torch.Tensor]:
    sam = load_bundle(bundle_dir).sam
    return {k: v for k, v in sam.state_dict().items() if k.startswith(click_train.TRAINED)}


def test_the_best_validated_step_is_written_as_a_new_version(
    start_bundle: Path, thigh_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scripted validation: step 2 has fewer clicks than the start, step 4 fewer still but its
    box-only IoU fell past max_box_drop, so step 2's decoder is what gets written."""
    scores = iter(
        [ValScore(5.0, 0.80, [0.8]), ValScore(3.0, 0.795, [0.8]), ValScore(1.0, 0.6, [0.9])]
    )
    seen: dict[int, dict[str, torch.Tensor]] = {}

    def scripted(sam: torch.nn.Module, *args: object) -> ValScore:
        seen[len(seen)] = click_train._decoder_state(sam)
        return next(scores)

    monkeypatch.setattr(click_train, "validate", scripted)
    run = train_clicks(_cfg(start_bundle, thigh_dir, tmp_path / "out", max_box_drop=0.01))
    assert run.best_step == 2 and run.steps_done == 4 and run.best.noc90 == 3.0
    written = _trained(tmp_path / "out")
    for key, value in seen[1].items():  # the state validated at step 2
        assert torch.equal(written[key].float(), value.float().to(written[key].dtype).float()), key
    assert any(not torch.equal(seen[1][k], seen[0][k]) for k in seen[0])  # it did train
    start_cfg, cfg = read_config(start_bundle), read_config(tmp_path / "out")
    assert cfg.parent_version == start_cfg.version and cfg.version == str(
        int(start_cfg.version) + 1
    )
    assert cfg.lora.train_prompt_encoder and cfg.lora.train_decoder
    assert cfg.classifier == start_cfg.classifier and cfg.domain == start_cfg.domain
    record = cfg.training["clicks"]
    assert record["best_step"] == 2 and record["val_best"]["noc90"] == 3.0
    history = (tmp_path / "out" / "training" / "clicks_history.jsonl").read_text().splitlines()
    assert [json.loads(h)["step"] for h in history] == [0, 2, 4]
    a, b = load_bundle(start_bundle).classifier, load_bundle(tmp_path / "out").classifier
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(v, w), k  # the classifier is untouched


def test_a_tie_in_clicks_goes_to_the_higher_iou_over_the_clicks() -> None:
    best = ValScore(1.0, 0.9, [0.9, 0.94, 0.93])
    assert click_train._better(ValScore(1.0, 0.9, [0.9, 0.95, 0.95]), best)
    assert not click_train._better(ValScore(1.0, 0.95, [0.95, 0.93, 0.92]), best)
    assert click_train._better(ValScore(0.5, 0.9, [0.9, 0.9, 0.9]), best)
    assert not click_train._better(ValScore(2.0, 0.9, [0.9, 0.99, 0.99]), best)


def test_no_better_step_keeps_the_start_decoder(
    start_bundle: Path, thigh_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(click_train, "validate", lambda *a: ValScore(2.0, 0.9, [0.9]))
    run = train_clicks(_cfg(start_bundle, thigh_dir, tmp_path / "out"))
    assert run.best_step == 0
    before, after = _trained(start_bundle), _trained(tmp_path / "out")
    assert before.keys() <= after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key


def test_real_validation_and_the_command_line(
    start_bundle: Path, thigh_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    code = main([
        "train-clicks", "--bundle", str(start_bundle), "--data", str(thigh_dir), "--out",
        str(out), "--embedding-cache", str(start_bundle.parent / "emb"), "--steps", "2",
        "--items", "2", "--rounds", "2", "--val-every", "1", "--val-items", "3",
        "--val-clicks", "2", "--p-cam", "0.5", "--quiet",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "NoC@90" in printed and str(out) in printed
    assert "From the CAM start: NoC@90" in printed
    record = read_config(out).training["clicks"]
    start = record["val_start"]
    assert 0.0 <= start["box_iou"] <= 1.0 and len(start["ious"]) == 3  # box + 2 clicks
    assert 0.0 <= start["noc90"] <= 2.0
    load_bundle(out)  # strict load: the prompt encoder's weights are in the adapter file


def test_clear_errors(start_bundle: Path, thigh_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="grad_rounds"):
        _cfg(start_bundle, thigh_dir, tmp_path / "x", rounds=2, grad_rounds=4)
    with pytest.raises(ConfigError, match="rounds must be"):
        _cfg(start_bundle, thigh_dir, tmp_path / "x", rounds=0)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"labeled": [0, 1, 500], "val": [2]}))
    with pytest.raises(ConfigError, match="names slice 500"):
        train_clicks(_cfg(start_bundle, thigh_dir, tmp_path / "x", split=str(split)))
    assert not (tmp_path / "x").exists()


def test_cam_first_prompts_are_the_pipelines_own(start_bundle: Path, thigh_dir: Path) -> None:
    """The CAM start trained on is what the studio's predict makes of the same slice (the
    predictor here computes its own embedding: no store)."""
    from adasam.predictor import Predictor

    cfg = _cfg(start_bundle, thigh_dir, start_bundle.parent / "unused", p_cam=0.5)
    bundle = load_bundle(start_bundle)
    cd = click_train.load_click_data(bundle, cfg)
    assert cd.cam, "an untrained CAM normalised to its peak always has a region"
    predictor = Predictor(load_bundle(start_bundle))
    names = bundle.config.structures
    for (s, t), (box, logits) in list(cd.cam.items())[:4]:
        got = predictor.predict(
            cd.data.images[s], [names[t]], presence_threshold=1e-9, prompt_out_of_domain=True
        ).structure(names[t])
        assert got.prompts is not None
        np.testing.assert_allclose(box, got.prompts.box, atol=1.0)
        agree = ((logits.numpy() > 0) == (got.prompts.mask_logits > 0)).mean()
        assert agree > 0.98
    assert not click_train.load_click_data(bundle, replace(cfg, p_cam=0.0)).cam


def test_the_cam_start_is_validated_and_guarded(
    start_bundle: Path, thigh_dir: Path, tmp_path: Path
) -> None:
    run = train_clicks(
        _cfg(start_bundle, thigh_dir, tmp_path / "cam", p_cam=1.0, p_box=0.0, p_jitter_box=0.0,
             p_point=0.0, steps=2, val_every=1)
    )  # fmt: skip
    start = run.start
    assert start.cam_noc90 is not None and start.cam_ious is not None
    assert start.cam_iou == pytest.approx(start.cam_ious[0])
    assert start.selection_noc90 == pytest.approx((start.noc90 + start.cam_noc90) / 2)
    cfg = _cfg(start_bundle, thigh_dir, tmp_path / "x")
    base = ValScore(2.0, 0.9, [0.9, 0.9], 4.0, 0.8, [0.8, 0.8])
    assert click_train._acceptable(replace(base, cam_iou=0.795), base, cfg)
    assert not click_train._acceptable(replace(base, cam_iou=0.78), base, cfg)  # CAM start fell
    assert not click_train._better(replace(base, noc90=1.0, cam_noc90=6.0), base)  # mean 3.5 > 3
    assert click_train._better(replace(base, noc90=2.5, cam_noc90=3.0), base)


def test_grad_rounds_keep_only_the_chosen_rounds_in_the_loss() -> None:
    from adasam.frame import ModelFrame
    from adasam.sam import build_sam
    from adasam.training.interactive import (
        InteractiveConfig,
        InteractiveItem,
        first_prompt,
        interactive_losses,
    )

    torch.manual_seed(0)
    sam = build_sam(TINY_SAM)
    frame = ModelFrame((32, 32), TINY_SAM.image_size, TINY_SAM.mask_size)
    gt = np.zeros((32, 32), bool)
    gt[8:20, 10:24] = True
    cfg = InteractiveConfig(rounds=3, p_box=1.0, p_jitter_box=0, p_point=0, p_cam=0)
    rng = np.random.default_rng(0)
    items = [InteractiveItem(0, gt, first_prompt(gt, rng, cfg)) for _ in range(2)]
    e = TINY_SAM.image_size // TINY_SAM.patch_size
    emb = torch.randn(1, TINY_SAM.prompt_embed_dim, e, e)
    out = interactive_losses(sam, emb, [frame], items, cfg, rng, grad_rounds=[1, 3])
    assert [r.requires_grad for r in out.rounds] == [False, True, False, True]
    assert torch.allclose(out.total, (out.rounds[1] + out.rounds[3]) / 2)
    assert len(out.item_ious) == 4 and all(len(r) == 2 for r in out.item_ious)
    assert out.ious == pytest.approx([float(np.mean(r)) for r in out.item_ious])
    with pytest.raises(ValueError, match="grad_rounds"):
        interactive_losses(sam, emb, [frame], items, cfg, rng, grad_rounds=[4])
