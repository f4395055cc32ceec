"""The simulated annotation session on a tiny bundle and four phantom slices."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from adasam.finetune import FinetuneConfig
from adasam.gate import GateConfig
from learning.job import JobOptions
from learning.simulate import SimulationConfig, blocks, simulate, verdict_of
from tests.learning.conftest import phantom_image


def _data(root: Path, n: int) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(n):
        image, mask = phantom_image(100 + k, size=128)
        Image.fromarray(image).save(root / "images" / f"s{k}.png")
        Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / f"s{k}.png")
    (root / "dataset.json").write_text(json.dumps({"labels": {"liver": 1, "kidney": 2}}))
    return root


def test_verdicts_follow_the_proposal_dice():
    assert [verdict_of(d)[1] for d in (0.99, 0.9, 0.6, 0.1)] == [
        "accept", "minor_edits", "major_edits", "reject"
    ]  # fmt: skip


def test_simulate_writes_table_json_and_plot(tmp_path, loop_bundle_dir):
    data = _data(tmp_path / "cases", 4)
    opts = JobOptions(
        base_bundle=loop_bundle_dir,
        finetune=FinetuneConfig(steps=1, batch_size=1, replay_ratio=0.0, threads=1),
        gate=GateConfig(heldout_share=0.5, min_cases=2, clicks=2),
    )
    cfg = SimulationConfig(cases=4, every=2, block=2, max_clicks=3, arms=("off", "both"))
    results = simulate(loop_bundle_dir, data, cfg, opts, tmp_path / "out")
    off, both = results
    assert [r.arm for r in results] == ["off", "both"]
    assert len(off.cases) == len(both.cases) == 4  # one liver per slice, no kidney
    assert off.jobs == [] and len(both.jobs) == 1 and both.jobs[0]["after_case"] == 2
    rows = blocks(off, 2, 4)
    assert [r["cases"] for r in rows] == ["1-2", "3-4"]
    assert all(0 <= r["noc90"] <= 3 and 0 <= r["dice"] <= 1 for r in rows)
    out = tmp_path / "out"
    assert (out / "simulate.png").stat().st_size > 1000
    table = (out / "simulate.md").read_text()
    assert "| both | 3-4 |" in table and "NoC@90" in table
    saved = json.loads((out / "simulate.json").read_text())
    assert set(saved["arms"]) == {"off", "both"}
    assert not list(out.glob("simulate-*"))  # the private stores are removed


def test_simulate_cli_refuses_a_missing_folder(tmp_path, capsys):
    from adasam.cli import main

    code = main(["simulate", "--bundle", str(tmp_path), "--data", str(tmp_path / "x"),
                 "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2 and "existing folders" in capsys.readouterr().err
    assert sys.modules.get("learning.simulate_command") is not None


def test_max_minutes_stops_every_arm_after_the_same_case(tmp_path, loop_bundle_dir, monkeypatch):
    import learning.simulate as sim

    data = _data(tmp_path / "cases", 4)
    clock = [0.0]

    def tick() -> float:  # every reading of the clock is a minute later
        clock[0] += 60.0
        return clock[0]

    monkeypatch.setattr(sim.time, "perf_counter", tick)
    opts = JobOptions(base_bundle=loop_bundle_dir, finetune=FinetuneConfig(threads=1))
    cfg = SimulationConfig(cases=4, every=2, block=2, max_clicks=2, arms=("off", "auxol"),
                           max_minutes=0.5)  # fmt: skip
    results = simulate(loop_bundle_dir, data, cfg, opts, tmp_path / "out")
    assert [sorted({c.index for c in r.cases}) for r in results] == [[0], [0]]
    saved = json.loads((tmp_path / "out" / "simulate.json").read_text())
    assert saved["cases"] == 1 and saved["cases_asked"] == 4


def test_goal_figures_on_hand_made_results():
    from learning.simulate import ArmResult, CaseResult, goal, goal_markdown

    def arm(name: str, nocs: list[int], jobs: list[dict]) -> ArmResult:
        cases = [CaseResult(i, "liver", 0.5 + 0.1 * i, n, n, "0") for i, n in enumerate(nocs)]
        return ArmResult(name, cases, jobs)

    gate_ok = {"delta_dice": 0.02, "delta_noc90": -1.0}
    gate_within_noise = {"delta_dice": -0.004, "delta_noc90": 0.0}
    jobs = [
        {"after_case": 2, "activated": True, "gate": gate_ok},
        {"after_case": 4, "activated": True, "gate": gate_within_noise},
        {"after_case": 6, "activated": False, "gate": {"delta_dice": -0.3}},
    ]
    summary = goal([arm("off", [10, 10, 8, 8], []), arm("both", [10, 10, 6, 6], jobs)], 2, 4)
    both = summary["both"]
    assert both["noc90_first"] == 10 and both["noc90_last"] == 6
    assert both["noc90_change"] == -0.4 and both["noc90_vs_off_last"] == -0.25
    assert both["dice_first"] == 0.55 and both["dice_last"] == 0.75
    assert both["jobs"] == 3 and both["activated"] == 2
    assert both["activated_numerically_worse"] == 1  # the one let in within noise
    table = goal_markdown(summary)
    assert "| both | 10.00 → 6.00 | -40 % | -25 % |" in table


def test_every_arm_version_and_job_shares_one_encoding_per_slice(tmp_path, monkeypatch):
    """A frozen encoder (LoRA off in it): the session encodes each slice once, for all arms,
    the fine-tuning job's pseudo-labels, training and gate, and the version it activates."""
    from segment_anything.modeling import ImageEncoderViT

    from adasam.bundle import create_bundle, save_bundle
    from adasam.config import ClassifierConfig, LoraSettings
    from tests.conftest import tiny_config

    config = tiny_config(
        classifier=ClassifierConfig(backbone="resnet10", image_size=64, threshold=1e-6),
        lora=LoraSettings(encoder=False, decoder=True),
        trained=True,
    )
    bundle = save_bundle(create_bundle(config, seed=0), tmp_path / "frozen")
    encoded: list[int] = []
    forward = ImageEncoderViT.forward

    def counting(self, x):  # type: ignore[no-untyped-def]
        encoded.append(int(x.shape[0]))
        return forward(self, x)

    monkeypatch.setattr(ImageEncoderViT, "forward", counting)
    data = _data(tmp_path / "cases", 4)
    # an open gate (this test counts encodings, the activated version's included): of the
    # three slices before the job, this seeded share holds out two (the fewest to judge)
    gate = GateConfig(heldout_share=0.6, min_cases=2, dice_tolerance=100.0,
                      noc_tolerance=100.0, clicks=2)  # fmt: skip
    opts = JobOptions(
        base_bundle=bundle,
        finetune=FinetuneConfig(steps=1, batch_size=1, replay_ratio=0.0, threads=1),
        gate=gate,
    )
    cfg = SimulationConfig(cases=4, every=3, block=2, max_clicks=3, arms=("off", "both"))
    results = simulate(bundle, data, cfg, opts, tmp_path / "out")
    [job] = results[1].jobs
    assert job["activated"] and job["gate"]["candidate"]["cases"] == 2, job["message"]
    assert sum(encoded) == 4  # 4 slices, 2 arms, 1 job, its candidate and the version it activated
    assert not list((tmp_path / "out").glob("simulate-*"))  # the shared store goes with it
