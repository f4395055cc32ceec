"""The fine-tuning job: lock, lineage, the gate, SIGKILL safety, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from adasam.bundle import load_bundle, read_config, save_bundle
from adasam.finetune import FinetuneConfig, FinetuneResult
from adasam.gate import CaseScore, GateConfig, is_heldout, judge
from adasam.predictor import Predictor
from learning import job as job_module
from learning.job import JobOptions, run_once
from storage import (
    JobLockedError,
    Store,
    acquire_job_lock,
    active_model_version,
    bundle_path,
    list_jobs,
    list_model_versions,
    open_store,
)
from tests.learning.conftest import add_correction, phantom_image

REPO = Path(__file__).resolve().parents[2]
FAST = FinetuneConfig(steps=2, batch_size=2, replay_ratio=0.0, threads=1)
GATE = GateConfig(heldout_share=0.5, min_cases=2, clicks=2)
# phantom slices 0..12 hold out exactly GATE.min_cases of them (2 and 12): the fewest corrections
# on which a job trains, the gate needing that much evidence to judge a candidate
JUDGEABLE = 13


def _options(bundle: Path, **changes: object) -> JobOptions:
    opts = JobOptions(base_bundle=bundle, finetune=FAST, gate=GATE, progress=False)
    return replace(opts, **changes)  # type: ignore[arg-type]


def _fill(store: Store, n: int, *, own_predictions_of: Path | None = None) -> list[int]:
    """n corrections on n slices; with ``own_predictions_of`` the final mask is that model's own
    best candidate (so the model scores perfectly on them)."""
    predictor = None if own_predictions_of is None else Predictor.from_dir(own_predictions_of)
    ids = []
    for k in range(n):
        image, mask = phantom_image(k)
        if predictor is not None:
            mask = predictor.predict(image, ["liver"]).structures[0].candidates[0].mask
        ids.append(add_correction(store, image, mask, verdict="major_edits"))
    return ids


def _split(store: Store, ids: list[int]) -> tuple[set[int], set[int]]:
    from learning.cases import corrected_cases

    cases = corrected_cases(store)
    held = {c.correction_id for c in cases if is_heldout(c.case, 0.5, 0)}
    return set(ids) - held, held


def test_once_registers_the_candidate_with_lineage_and_gate_scores(store, loop_bundle_dir):
    ids = _fill(store, JUDGEABLE)
    train_ids, held = _split(store, ids)
    assert train_ids and len(held) >= GATE.min_cases  # the seeded split: enough to judge
    outcome = run_once(store, _options(loop_bundle_dir))
    versions = list_model_versions(store)
    root, cand = versions
    assert root.metrics["root"] is True and root.parent_id is None
    assert cand.parent_id == root.id and cand.name == f"{root.name}-ft{outcome.job_id}"
    lineage = cand.metrics["lineage"]
    assert lineage["parent_id"] == root.id
    assert set(lineage["correction_ids"]) == train_ids  # never a held-out one
    assert set(lineage["heldout_correction_ids"]) == held
    assert len(lineage["data_hash"]) == 64
    gate = cand.metrics["gate"]
    assert gate["candidate"]["cases"] == gate["active"]["cases"] == len(held)
    assert gate["activate"] == cand.is_active and gate["reason"]
    assert cand.trained_through_correction_id == max(ids)
    assert cand.metrics["training"]["steps"] == 2
    [job] = list_jobs(store)
    assert job.status == "succeeded" and job.result_model_version_id == cand.id
    config = read_config(bundle_path(store, cand.id))
    assert config.version == f"ft{outcome.job_id}" and config.parent_version == "0"
    if cand.is_active:  # nothing new since: the next run trains nothing, registers nothing
        again = run_once(store, _options(loop_bundle_dir))
        assert again.version is None and "nothing trained" in again.message
    assert not (Path(store.data_dir) / "finetune" / f"job-{outcome.job_id}").exists()


def _worse_finetune(parent_dir, out_dir, data, cfg, *, version, replay_info=None, progress=True):
    """A 'fine-tune' that returns a deliberately broken model: the classifier finds nothing."""
    bundle = load_bundle(parent_dir)
    cls = replace(bundle.config.classifier, threshold=0.999999)
    broken = replace(bundle, config=replace(bundle.config, classifier=cls, version=version))
    save_bundle(broken, out_dir)
    return FinetuneResult(Path(out_dir), 0, 0.0, 0.0, [])


def test_too_few_heldout_corrections_train_nothing(store, loop_bundle_dir, monkeypatch):
    ids = _fill(store, 6)
    train_ids, held = _split(store, ids)
    assert train_ids and len(held) < 5

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained although the gate could not judge the result")

    monkeypatch.setattr(job_module, "finetune", no_training)
    gate = replace(GATE, min_cases=5)
    outcome = run_once(store, _options(loop_bundle_dir, gate=gate))
    assert outcome.version is None and outcome.verdict is None
    assert outcome.message.startswith(f"{len(held)} held-out correction(s), 5 needed")
    assert f"{len(train_ids)} trainable correction(s) wait" in outcome.message
    [root] = list_model_versions(store)  # nothing registered beside the base
    assert root.is_active
    [job] = list_jobs(store)
    assert job.status == "succeeded" and job.result_model_version_id is None


def test_a_deliberately_worse_candidate_is_not_activated(store, loop_bundle_dir, monkeypatch):
    ids = _fill(store, 15, own_predictions_of=loop_bundle_dir)
    assert len(_split(store, ids)[1]) == 3  # enough held-out cases to judge (min_cases 2)
    monkeypatch.setattr(job_module, "finetune", _worse_finetune)
    outcome = run_once(store, _options(loop_bundle_dir))
    root, cand = list_model_versions(store)
    assert not cand.is_active and active_model_version(store).id == root.id
    assert outcome.verdict is not None and not outcome.verdict.activate
    gate = cand.metrics["gate"]
    bound = f"proposal Dice may be worse by up to {gate['dice_bound']:.3f} (95 % bound)"
    assert gate["reason"].startswith(bound)
    assert gate["dice_bound"] > 0.5 and gate["delta_dice"] < -0.5
    assert gate["active"]["dice"] == 1.0  # the parent made these very masks
    assert gate["candidate"]["dice"] < 0.5


def test_judge_on_hand_made_scores():
    def scores(dice: list[float], noc: list[int]) -> list[CaseScore]:
        return [CaseScore(i, d, n, n, ()) for i, (d, n) in enumerate(zip(dice, noc, strict=True))]

    base = scores([0.8, 0.7, 0.9, 0.6], [3, 4, 2, 5])
    cfg = GateConfig(min_cases=3)
    same = judge(scores([0.805, 0.69, 0.9, 0.6], [3, 4, 2, 5]), base, cfg)
    assert same.activate and same.reason.startswith("not worse")
    worse = judge(scores([0.6, 0.5, 0.7, 0.4], [3, 4, 2, 5]), base, cfg)
    assert not worse.activate and "Dice" in worse.reason and worse.delta_dice == -0.2
    more_clicks = judge(scores([0.8, 0.7, 0.9, 0.6], [6, 7, 5, 8]), base, cfg)
    assert not more_clicks.activate and "NoC@90" in more_clicks.reason
    # mean −0.04 with a big spread: not shown worse, but not shown not worse either
    noisy = judge(scores([0.9, 0.4, 1.0, 0.55], [3, 4, 2, 5]), base, cfg)
    assert not noisy.activate and noisy.dice_bound > 0.04
    assert noisy.reason.startswith(f"proposal Dice may be worse by up to {noisy.dice_bound:.3f}")
    few = judge(scores([0.8, 0.7], [3, 4]), base[:2], cfg)
    assert not few.activate and "needed" in few.reason
    with pytest.raises(ValueError, match="same held-out"):
        judge(base[:2], base[1:3], cfg)


def test_the_heldout_choice_is_fixed_and_close_to_its_share():
    cases = [f"{k:064x}" for k in range(2000)]
    held = [c for c in cases if is_heldout(c, 0.2, 0)]
    assert 0.17 < len(held) / len(cases) < 0.23
    assert held == [c for c in cases if is_heldout(c, 0.2, 0)]
    assert held != [c for c in cases if is_heldout(c, 0.2, 1)]


def test_a_second_job_refuses_and_names_the_holder(store, loop_bundle_dir):
    _fill(store, 2)
    acquire_job_lock(store, owner="gpu-box:4242")
    with pytest.raises(JobLockedError, match="gpu-box:4242"):
        run_once(store, _options(loop_bundle_dir))
    assert list_model_versions(store) == []


def _env(data: Path, bundle: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ADASAM_DATA_DIR=str(data),
        ADASAM_BUNDLE=str(bundle),
        ADASAM_DEVICE="cpu",
        DATABASE_URL=f"sqlite:///{data / 'db.sqlite3'}",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(REPO),
    )
    return env


def test_cli_second_job_exits_2_with_one_line(store, loop_bundle_dir):
    acquire_job_lock(store, owner="other-host:7")
    proc = subprocess.run(
        [sys.executable, "-m", "adasam", "finetune", "--once", "--quiet"],
        env=_env(Path(store.data_dir), loop_bundle_dir),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "other-host:7" in lines[0] and "one job at a time" in lines[0]


@pytest.mark.slow
def test_sigkill_leaves_no_half_registered_version_and_the_lock_expires(tmp_path, loop_bundle_dir):
    data = tmp_path / "data"
    s = open_store(f"sqlite:///{data / 'db.sqlite3'}", data)
    _fill(s, JUDGEABLE)
    flags = ["--steps", "100000", "--replay-ratio", "0", "--threads", "1"]
    flags += ["--heldout-share", str(GATE.heldout_share), "--min-heldout", str(GATE.min_cases)]
    flags += ["--stale-minutes", "0.05"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "adasam", "finetune", "--once", "--quiet", *flags],
        env=_env(data, loop_bundle_dir),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 240
        training = data / "finetune"
        while not list(training.glob("job-*/bundle/training/split.json")):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the job never started training"
            time.sleep(0.2)
        time.sleep(1.0)  # mid-training
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    versions = list_model_versions(s)
    assert [v.metrics.get("root") for v in versions] == [True]  # only the complete root
    [job] = list_jobs(s)
    assert job.status == "running"
    with pytest.raises(JobLockedError):
        acquire_job_lock(s, owner="next", stale_after=timedelta(hours=1))
    time.sleep(1.5)  # no heartbeat comes from a killed job
    taken = acquire_job_lock(s, owner="next", stale_after=timedelta(seconds=1))
    old = next(j for j in list_jobs(s) if j.id == job.id)
    assert taken.status == "running" and old.status == "failed" and "abandoned" in old.error
    s.close()


def test_models_command_lists_and_rolls_back(store, loop_bundle_dir, capsys, monkeypatch):
    from adasam.cli import main

    _fill(store, JUDGEABLE)
    run_once(store, _options(loop_bundle_dir))
    monkeypatch.setenv("ADASAM_DATA_DIR", str(store.data_dir))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{store.data_dir / 'db.sqlite3'}")
    assert main(["models", "list"]) == 0
    listed = capsys.readouterr().out
    assert "parent" in listed and "gate:" in listed
    root, cand = list_model_versions(store)
    assert main(["models", "activate", str(cand.id)]) == 0
    assert main(["models", "rollback"]) == 0
    assert active_model_version(store).id == root.id
    assert main(["models", "rollback"]) == 2  # the root has no parent
    assert "no parent" in capsys.readouterr().err


def test_job_metrics_are_json(store, loop_bundle_dir):
    _fill(store, JUDGEABLE)
    outcome = run_once(store, _options(loop_bundle_dir))
    json.dumps(outcome.metrics)
    assert np.isfinite(outcome.metrics["training"]["final_loss"])


def test_the_next_gate_reuses_the_active_versions_recorded_scores(store, loop_bundle_dir):
    from adasam.gate import score_cases, split_heldout
    from learning.cases import corrected_cases

    ids = _fill(store, JUDGEABLE)
    run_once(store, _options(loop_bundle_dir))
    _, held_before = _split(store, ids)
    for k in range(JUDGEABLE, JUDGEABLE + 6):
        image, mask = phantom_image(k)
        add_correction(store, image, mask, verdict="major_edits")
    second = run_once(store, _options(loop_bundle_dir))
    assert second.version is not None
    assert second.metrics["gate"]["reused_active_scores"] == len(held_before) > 0
    # a reused score is exactly what scoring the parent afresh gives
    parent_dir = bundle_path(store, second.version.parent_id)
    _, heldout = split_heldout(corrected_cases(store), GATE)
    fresh = score_cases(Predictor.from_dir(parent_dir), heldout, GATE.clicks)
    recorded = {r["correction_id"]: r for r in second.metrics["gate_scores"]["active"]}
    assert set(recorded) == {s.correction_id for s in fresh}
    for s in fresh:
        r = recorded[s.correction_id]
        assert (r["dice"], r["noc85"], r["noc90"], tuple(r["ious"])) == (
            s.dice,
            s.noc85,
            s.noc90,
            s.ious,
        )


def test_a_recorded_score_is_reused_only_for_the_same_mask_and_click_budget():
    from adasam.finetune import CorrectedCase
    from adasam.gate import reusable_scores, scores_record

    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    case = CorrectedCase(7, "c", "liver", np.zeros((8, 8, 3), np.uint8), mask)
    records = scores_record([CaseScore(7, 0.8, 2, 3, (0.5, 0.9))], [case], clicks=20)
    assert reusable_scores(records, [case], 20) == {7: CaseScore(7, 0.8, 2, 3, (0.5, 0.9))}
    assert reusable_scores(records, [case], 10) == {}  # another click budget
    edited = replace(case, mask=~mask)  # the final mask changed since
    assert reusable_scores(records, [edited], 20) == {}
    assert reusable_scores(json.loads(json.dumps(records)), [case], 20)  # survives JSON
