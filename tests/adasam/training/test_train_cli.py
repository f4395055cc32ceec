"""Two-step training smoke runs, resume, reproducibility, evaluate and the CLI."""

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
from adasam.training.loop import TrainConfig, train
from tests.conftest import TINY_SAM


def _cfg(data: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(
        data=str(data),
        out=str(out),
        labeled="6",
        size=64,
        steps_per_epoch=1,
        max_steps=2,
        batch_size=2,
        unlabeled_batch_size=2,
        val_max=3,
        backbone="resnet10",
        classifier_size=64,
        val_fraction=0.34,
        warmup_steps=1,
        sam="small",
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _tiny_sam(monkeypatch: pytest.MonkeyPatch) -> None:
    """Train the tiny SAM of the test suite instead of the demo's small SAM."""
    import adasam.training.loop as loop

    monkeypatch.setattr(loop, "SamConfig", lambda: TINY_SAM)


def test_two_step_smoke_run_writes_bundle_and_logs(thigh_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    _, state = train(_cfg(thigh_dir, out), progress=False)
    assert state.step == 2 and state.epoch == 2
    cfg = read_config(out)
    assert cfg.trained and cfg.structures == ("vastus_lateralis", "vastus_medialis")
    assert cfg.training["labeled"] == "6" and cfg.training["n_labeled"] == 6
    assert "val_dice" in cfg.metrics
    calibration = cfg.training["calibration"]  # thresholds tuned on the validation slices
    split = json.loads((out / "training" / "split.json").read_text())
    # on the whole validation split (16 slices of two subjects), not only --val-max's 3
    assert calibration["n_slices"] == len(split["val"]) == 16
    assert calibration["score"] >= calibration["previous_score"]
    assert cfg.classifier.threshold == calibration["classifier_threshold"]
    assert cfg.prompts.threshold == calibration["cam_threshold"]
    lines = (out / "training" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    assert {"loss", "cls", "seg", "iou", "cons", "val_dice"} <= set(json.loads(lines[-1]))
    assert (out / "training" / "curves.png").stat().st_size > 1000
    assert len(split["labeled"]) == 6
    load_bundle(out)  # strict load of what was written


def test_seeded_runs_are_reproducible(thigh_dir: Path, tmp_path: Path) -> None:
    a, _ = train(_cfg(thigh_dir, tmp_path / "a", val_max=0), progress=False)
    b, _ = train(_cfg(thigh_dir, tmp_path / "b", val_max=0), progress=False)
    for (n, p), (_, q) in zip(
        a.classifier.state_dict().items(), b.classifier.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(p, q, msg=n)


def test_resume_continues_where_it_stopped(thigh_dir: Path, tmp_path: Path) -> None:
    full, _ = train(_cfg(thigh_dir, tmp_path / "full", max_steps=3, val_max=0), progress=False)
    out = tmp_path / "resumed"
    train(_cfg(thigh_dir, out, max_steps=2, val_max=0), progress=False)
    # the first run's schedule had 2 steps; continue under the 3-step schedule
    import adasam.training.loop as loop

    ck = torch.load(out / "training" / loop.CHECKPOINT, weights_only=False)
    assert ck["state"]["step"] == 2
    resumed, state = train(
        _cfg(thigh_dir, out, max_steps=3, val_max=0), resume=True, progress=False
    )
    assert state.step == 3 and len(state.history) == 3
    with pytest.raises(Exception, match="nothing to resume"):
        train(_cfg(thigh_dir, tmp_path / "none"), resume=True, progress=False)
    assert resumed is not full


def test_max_minutes_stops_at_the_first_epoch_end_past_it(
    thigh_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "timed"
    # any epoch outlasts 1e-6 minutes, so the run stops after the first of three
    _, state = train(_cfg(thigh_dir, out, max_steps=3, val_max=0, max_minutes=1e-6), progress=False)
    assert state.step == 1 and state.epoch == 1
    assert "--max-minutes" in capsys.readouterr().out
    assert read_config(out).training["max_minutes"] == 1e-6
    for bad in (0.0, -5.0):
        with pytest.raises(ConfigError, match="max_minutes"):
            _cfg(thigh_dir, out, max_minutes=bad)


def test_calibrate_max_caps_the_calibration_slices(thigh_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "capped"
    train(_cfg(thigh_dir, out, max_steps=1, val_max=1, calibrate_max=2), progress=False)
    assert read_config(out).training["calibration"]["n_slices"] == 2
    with pytest.raises(ConfigError, match="calibrate_max"):
        _cfg(thigh_dir, out, calibrate_max=0)


def test_no_feedback_run_leaves_classifier_to_classification(
    thigh_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sammix"
    train(_cfg(thigh_dir, out, feedback=False, val_max=0), progress=False)
    assert read_config(out).training["feedback"] is False


def test_train_and_evaluate_cli(thigh_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    rc = main(
        [
            "train",
            "--data",
            str(thigh_dir),
            "--labeled",
            "6",
            "--out",
            str(out),
            "--max-steps",
            "1",
            "--steps-per-epoch",
            "1",
            "--batch-size",
            "2",
            "--unlabeled-batch-size",
            "0",
            "--val-max",
            "2",
            "--backbone",
            "resnet10",
            "--classifier-size",
            "64",
            "--sam",
            "small",
            "--device",
            "cpu",
            "--no-progress",
            "--max-minutes",
            "30",
        ]
    )
    assert rc == 0 and "best validation score" in capsys.readouterr().out
    assert read_config(out).training["max_minutes"] == 30  # the flag reaches the run
    report = tmp_path / "report.json"
    threads = torch.get_num_threads()
    rc = main(
        [
            "evaluate",
            "--bundle",
            str(out),
            "--data",
            str(thigh_dir),
            "--out",
            str(report),
            "--size",
            "64",
            "--limit",
            "4",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--clicks",
            "3",
            "--click-slices",
            "2",
        ]
    )
    assert rc == 0 and torch.get_num_threads() == 1
    torch.set_num_threads(threads)
    body = json.loads(report.read_text())
    assert body["hd95_unit"] == "mm" and len(body["structures"]) == 2
    s = body["structures"][0]
    assert {"dice_mean", "iou_mean", "hd95_mean", "auroc", "oracle_gt_box_dice_mean"} <= set(s)
    assert "oracle" in report.with_suffix(".md").read_text()
    for s in body["structures"]:  # the area breakdown covers every scored slice, same mean
        bins = s["by_area"]
        assert sum(b["n"] for b in bins) == s["n_present"]
        if s["n_present"]:
            mean = sum(b["n"] * b["dice_mean"] for b in bins) / s["n_present"]
            assert mean == pytest.approx(s["dice_mean"])
    assert "by ground-truth area" in report.with_suffix(".md").read_text()
    assert body["meta"]["clicks"]["max_clicks"] == 3
    for s in body["structures"]:  # the click protocol ran from both starts, within its bounds
        assert [c["start"] for c in s["clicks"]] == ["box", "cam"]
        for c in s["clicks"]:
            assert c["n"] == min(2, s["n_present"]) and c["n_clicks"] <= 3 * c["n"]
            if c["n"]:
                assert 0 <= c["noc90_mean"] <= 3 and 0 <= c["miou_after_5"] <= 1
    assert "NoC@90" in report.with_suffix(".md").read_text()
    bad = ["evaluate", "--bundle", str(out), "--data", str(thigh_dir), "--out", str(report)]
    assert main([*bad, "--clicks", "-1"]) == 2
    assert main([*bad, "--click-stop-iou", "1.5"]) == 2
    assert "click" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "nope"),
                "--labeled",
                "5",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert (
        main(["train", "--data", str(thigh_dir), "--labeled", "five", "--out", str(tmp_path / "x")])
        == 2
    )
    assert "--labeled" in capsys.readouterr().err


def test_weights_change_in_training(thigh_dir: Path, tmp_path: Path) -> None:
    from adasam.bundle import create_bundle
    from adasam.config import BundleConfig, ClassifierConfig

    before = create_bundle(
        replace(
            BundleConfig(name="x", structures=("a",)),
            sam=TINY_SAM,
            classifier=ClassifierConfig(backbone="resnet10", image_size=64),
        )
    )
    after, _ = train(_cfg(thigh_dir, tmp_path / "w", val_max=0), progress=False)
    lora = [v for k, v in after.sam.state_dict().items() if "lora_B" in k]
    assert any(float(v.abs().sum()) > 0 for v in lora)  # LoRA B starts at zero
    assert before is not after and np.isfinite(sum(float(v.sum()) for v in lora))


@pytest.mark.parametrize("train_decoder", [False, True])
def test_decoder_trains_only_when_asked(
    thigh_dir: Path, tmp_path: Path, train_decoder: bool
) -> None:
    from adasam.bundle import create_bundle
    from adasam.config import BundleConfig, ClassifierConfig

    ref = create_bundle(
        replace(
            BundleConfig(name="x", structures=("a", "b")),
            sam=TINY_SAM,
            classifier=ClassifierConfig(backbone="resnet10", image_size=64),
        ),
        seed=0,
    )
    out = tmp_path / "d"
    after, _ = train(_cfg(thigh_dir, out, val_max=0, train_decoder=train_decoder), progress=False)
    key = "mask_decoder.output_upscaling.0.weight"
    changed = not torch.equal(after.sam.state_dict()[key], ref.sam.state_dict()[key])
    assert changed is train_decoder
    assert read_config(out).lora.train_decoder is train_decoder
    loaded = load_bundle(out)
    torch.testing.assert_close(loaded.sam.state_dict()[key], after.sam.state_dict()[key])
    import adasam.training.loop as loop

    ck = torch.load(out / "training" / loop.CHECKPOINT, weights_only=False)
    assert (key in ck["sam"]) is train_decoder  # resume restores the decoder it trained
    _, state = train(
        _cfg(thigh_dir, out, max_steps=3, val_max=0, train_decoder=train_decoder),
        resume=True,
        progress=False,
    )
    assert state.step == 3


def test_small_structure_oversampling(thigh_dir: Path, tmp_path: Path) -> None:
    from adasam.training.data import load_dataset
    from adasam.training.loop import epoch_order, small_structure_slices

    data = load_dataset(thigh_dir, 64)
    idx = list(range(len(data)))
    areas = data.masks(np.asarray(idx)).sum(axis=(-2, -1))
    small = small_structure_slices(data, idx, 60)
    expected = [bool(((a > 0) & (a < 60)).any()) for a in areas]
    assert small.tolist() == expected and 0 < small.sum() < len(idx)
    # no oversampling: a permutation, every slice once
    order = epoch_order(idx, small, 0.0, np.random.default_rng(0))
    assert sorted(order.tolist()) == idx
    # oversampled: as many draws, small-structure slices about (1 + 4) times as likely
    draws = np.concatenate(
        [epoch_order(idx, small, 4.0, np.random.default_rng(s)) for s in range(200)]
    )
    share = np.isin(draws, np.flatnonzero(small)).mean()
    k = small.sum()
    assert share == pytest.approx(5 * k / (5 * k + (len(idx) - k)), abs=0.02)
    assert share > k / len(idx) + 0.1
    with pytest.raises(ConfigError, match="small_oversample"):
        _cfg(thigh_dir, tmp_path, small_oversample=-1.0)
    # a run with oversampling trains and records the setting
    train(_cfg(thigh_dir, tmp_path / "o", small_oversample=3.0, small_area=60), progress=False)
    assert read_config(tmp_path / "o").training["small_oversample"] == 3.0
