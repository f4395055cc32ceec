"""A simulated annotation session: the learning loop's effect on a clinician's effort.

A simulated clinician works through N unseen cases in order. For every target structure the
slice shows, it takes the pre-selected proposal (the CAM-prompted best candidate; with AuxOL
on, the fused mask), corrects it by the click protocol of :mod:`adasam.clicks` (next click in
the largest error region, up to 20, stop at IoU 0.9; the refinements are SAM's, fed SAM's own
previous logits), then submits the ground truth as the final mask and rates it (SegEx verdict
from the proposal's Dice: ≥ 0.95 accept, ≥ 0.85 minor edits, ≥ 0.5 major edits, else reject).
Submissions go to a private store exactly as the studio writes them; every K cases the
fine-tuning job runs in process (lock, held-out gate and all).

Four arms over the same cases: loop off, AuxOL only, fine-tuning only, both; a fifth,
``finetune-unweighted``, is fine-tuning without the SegEx rating weights (the ablation). Reported
per block of cases: first-proposal Dice, NoC@85, NoC@90 (means), and the versions the gate
activated.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

ARMS = ("off", "auxol", "finetune", "both", "finetune-unweighted")
TUNED = ("finetune", "both", "finetune-unweighted")
"""Arms that run the fine-tuning job; ``finetune-unweighted`` is the SegEx ablation (every
corrected case drawn once, whatever its rating)."""


@dataclass(frozen=True)
class SimulationConfig:
    """What the session does."""

    cases: int = 200
    every: int = 40
    block: int = 40
    max_clicks: int = 20
    arms: tuple[str, ...] = ARMS[:4]
    threads: int = 0
    quiet: bool = False
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        bad = [a for a in self.arms if a not in ARMS]
        if bad or not self.arms:
            raise ValueError(f"unknown arm(s) {bad}; choose from {', '.join(ARMS)}")
        if min(self.cases, self.every, self.block, self.max_clicks) < 1:
            raise ValueError("cases, every, block and max_clicks must be ≥ 1")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0, got {self.max_minutes}")


def verdict_of(dice: float) -> tuple[int, str]:
    """The simulated clinician's SegEx (score, verdict) of a proposal with this Dice."""
    if dice >= 0.95:
        return 5, "accept"
    if dice >= 0.85:
        return 4, "minor_edits"
    if dice >= 0.5:
        return 2, "major_edits"
    return 1, "reject"


@dataclass
class CaseResult:
    """One structure of one case in one arm."""

    index: int
    structure: str
    dice: float
    noc85: int
    noc90: int
    version: str


@dataclass
class ArmResult:
    """Everything one arm produced."""

    arm: str
    cases: list[CaseResult] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _submit(store: Any, image: np.ndarray, structure: str, proposal: np.ndarray,
            gt: np.ndarray, dice: float) -> None:  # fmt: skip
    from storage import (
        HumanObserver,
        ensure_annotator,
        pixels_hash,
        record_correction,
        record_prediction,
        record_rating,
        record_slice,
    )

    pixels = image[:, :, 0].astype(np.float32)
    sl = record_slice(
        store, content_hash=pixels_hash(pixels), pixels=pixels, display=image, modality="MR"
    )
    ensure_annotator(store, "simulated")
    pred = record_prediction(
        store, slice_hash=sl.content_hash, structure=structure, candidates=[proposal],
        scores=[0.5],
    )  # fmt: skip
    record_correction(
        store, prediction_id=pred.id, chosen_rank=0, final_mask=gt, annotator="simulated",
        seconds=1.0,
    )  # fmt: skip
    score, verdict = verdict_of(dice)
    record_rating(
        store, observer=HumanObserver("simulated"), candidate_id=pred.candidates[0].id,
        score=score, verdict=verdict,
    )  # fmt: skip


def _proposal(predictor: Any, aux: Any, image: np.ndarray, structure: str) -> Any:
    """(start candidate or None, proposal mask, SAM logits at the slice size, box)."""
    from adasam.auxol import sam_logits_at_original
    from adasam.predictor import Candidate

    result = predictor.predict(image, [structure]).structures[0]
    if not (result.found and result.candidates):
        return None, np.zeros(image.shape[:2], bool), None, None
    start = result.candidates[0]
    box = tuple(float(v) for v in result.prompts.box)
    logits = sam_logits_at_original(start.logits, predictor.frame(image.shape[:2]))
    if aux is not None:
        fused = aux.fuse(image, box, logits)
        start = Candidate(fused.mask, start.score, start.logits)
    return start, start.mask, logits, box


class ArmRunner:
    """One arm's state across the session (its own store under ``work``, its predictor and
    specialist): :meth:`case` does one case, :meth:`after` runs the fine-tuning job when due.
    Arms advance case by case together, so a time budget stops them all at the same case."""

    def __init__(
        self,
        arm: str,
        bundle: Path,
        structures: Sequence[str],
        cfg: SimulationConfig,
        job_options: Any,
        work: Path,
    ) -> None:
        from adasam.auxol import AuxOL
        from learning.job import ensure_parent
        from storage import bundle_path, open_store

        self.result = ArmResult(arm)
        self.structures = list(structures)
        self.cfg = cfg
        self.opts = job_options
        if arm == "finetune-unweighted":
            self.opts = replace(
                job_options, finetune=replace(job_options.finetune, rating_weights=False)
            )
        data = work / arm
        shutil.rmtree(data, ignore_errors=True)
        self.store = open_store(f"sqlite:///{data / 'db.sqlite3'}", data)
        active, _ = ensure_parent(self.store, bundle)
        self.predictor = self._load(bundle_path(self.store, active.id))
        self.aux = AuxOL() if arm in ("auxol", "both") else None

    def _load(self, bundle_dir: Path) -> Any:
        """The arm's predictor of ``bundle_dir``, reading and writing the session's embedding
        store (``finetune.embedding_cache``) when the encoder is frozen: every arm, version,
        training run and gate then encodes a slice once."""
        from adasam.embedding_store import frozen_store
        from adasam.predictor import Predictor

        cfg = self.opts.finetune
        predictor = Predictor.from_dir(bundle_dir, cfg.device)
        predictor.embedding_store = frozen_store(predictor.bundle, cfg.embedding_cache)
        return predictor

    def case(self, i: int, image: np.ndarray, gts: np.ndarray) -> None:
        """Case ``i``: every structure its ground truth shows (``gts`` bool ``(T, H, W)``)."""
        from adasam.clicks import noc, run_click_protocol
        from adasam.training.metrics import dice as dice_of

        start_time = time.perf_counter()
        cfg = self.cfg
        for t, structure in enumerate(self.structures):
            gt = gts[t]
            if not gt.any():
                continue
            start, proposal, logits, box = _proposal(self.predictor, self.aux, image, structure)
            d = dice_of(proposal, gt)
            trace = run_click_protocol(
                self.predictor, image, gt, start=start, max_clicks=cfg.max_clicks, stop_iou=0.9
            )
            self.result.cases.append(
                CaseResult(
                    i,
                    structure,
                    d,
                    noc(trace.ious, 0.85, cfg.max_clicks),
                    noc(trace.ious, 0.9, cfg.max_clicks),
                    self.predictor.bundle.config.version,
                )
            )
            _submit(self.store, image, structure, proposal, gt, d)
            if self.aux is not None and logits is not None:
                self.aux.update(image, box, logits, gt)
        self.result.seconds += time.perf_counter() - start_time

    def after(self, i: int, n: int) -> None:
        """After case ``i`` of ``n``: the fine-tuning job every ``cfg.every`` cases (these
        arms), the new predictor when the gate activated its version."""
        from learning.job import run_once
        from storage import bundle_path

        arm = self.result.arm
        if arm not in TUNED or (i + 1) % self.cfg.every or i + 1 >= n:
            return
        start_time = time.perf_counter()
        outcome = run_once(self.store, self.opts)
        activated = bool(outcome.verdict and outcome.verdict.activate)
        self.result.jobs.append(
            {"after_case": i + 1, "message": outcome.message, "activated": activated,
             "gate": outcome.metrics.get("gate"),
             "seconds": round(time.perf_counter() - start_time, 1)}
        )  # fmt: skip
        if activated:
            self.predictor = self._load(bundle_path(self.store, outcome.version.id))
            if self.aux is not None:
                self.aux = self.aux.inherit()
        self.result.seconds += time.perf_counter() - start_time

    def close(self) -> None:
        self.store.close()


def run_arms(
    bundle: Path,
    images: np.ndarray,
    gts: np.ndarray,
    structures: Sequence[str],
    cfg: SimulationConfig,
    job_options: Any,
    work: Path,
) -> tuple[list[ArmResult], int]:
    """Every arm over the cases, case by case; (results, cases done). With
    ``cfg.max_minutes`` the session stops after the first case that ends past it (every arm
    has then done the same cases)."""
    runners = [ArmRunner(a, bundle, structures, cfg, job_options, work) for a in cfg.arms]
    started = time.perf_counter()
    done = 0
    try:
        for i in range(len(images)):
            for r in runners:
                r.case(i, images[i], gts[i])
                r.after(i, len(images))
            done = i + 1
            if not cfg.quiet and (done % 10 == 0 or done == len(images)):
                line = ", ".join(
                    f"{r.result.arm} {np.mean([c.noc90 for c in r.result.cases] or [0]):.2f}"
                    for r in runners
                )
                print(f"case {done}/{len(images)}: mean NoC@90 so far {line}", flush=True)
            minutes = (time.perf_counter() - started) / 60
            if cfg.max_minutes is not None and minutes > cfg.max_minutes and done < len(images):
                if not cfg.quiet:
                    print(f"stopped after {done} cases: --max-minutes {cfg.max_minutes}")
                break
    finally:
        for r in runners:
            r.close()
    return [r.result for r in runners], done


def blocks(result: ArmResult, block: int, n_cases: int) -> list[dict[str, float]]:
    """Per block of ``block`` cases: mean first-proposal Dice, NoC@85, NoC@90."""
    rows = []
    for start in range(0, n_cases, block):
        sel = [c for c in result.cases if start <= c.index < start + block]
        if not sel:
            continue
        rows.append(
            {
                "cases": f"{start + 1}-{min(start + block, n_cases)}",
                "n": len(sel),
                "dice": float(np.mean([c.dice for c in sel])),
                "noc85": float(np.mean([c.noc85 for c in sel])),
                "noc90": float(np.mean([c.noc90 for c in sel])),
            }
        )
    return rows


def markdown(results: Sequence[ArmResult], block: int, n_cases: int) -> str:
    """The table: one row per (arm, block)."""
    lines = [
        "| arm | cases | structures | first-proposal Dice | NoC@85 | NoC@90 |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for row in blocks(r, block, n_cases):
            lines.append(
                f"| {r.arm} | {row['cases']} | {row['n']} | {row['dice']:.3f} | "
                f"{row['noc85']:.2f} | {row['noc90']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def goal(results: Sequence[ArmResult], block: int, n_cases: int) -> dict[str, Any]:
    """Per arm: NoC@90 and first-proposal Dice of the first and the last block, the relative
    NoC@90 change within the arm and against the loop-off arm on the same last block, and the
    held-out deltas of every version the gate activated (candidate − active: Dice, NoC@90)."""
    rows = {r.arm: blocks(r, block, n_cases) for r in results}
    off_last = rows["off"][-1] if rows.get("off") else None
    out: dict[str, Any] = {}
    for r in results:
        first, last = rows[r.arm][0], rows[r.arm][-1]
        activated = [j for j in r.jobs if j["activated"]]
        deltas = [
            {"after_case": j["after_case"], "delta_dice": (j.get("gate") or {}).get("delta_dice"),
             "delta_noc90": (j.get("gate") or {}).get("delta_noc90")}
            for j in activated
        ]  # fmt: skip
        numerically_worse = [
            d for d in deltas
            if (d["delta_dice"] or 0) < 0 or (d["delta_noc90"] or 0) > 0
        ]  # fmt: skip
        out[r.arm] = {
            "noc90_first": first["noc90"],
            "noc90_last": last["noc90"],
            "noc90_change": (last["noc90"] - first["noc90"]) / first["noc90"]
            if first["noc90"]
            else None,
            "noc90_vs_off_last": (last["noc90"] - off_last["noc90"]) / off_last["noc90"]
            if off_last and off_last["noc90"]
            else None,
            "dice_first": first["dice"],
            "dice_last": last["dice"],
            "jobs": len(r.jobs),
            "activated": len(activated),
            "activated_deltas": deltas,
            "activated_numerically_worse": len(numerically_worse),
        }
    return out


def goal_markdown(summary: dict[str, Any]) -> str:
    """The goal's figures as a table (relative NoC@90 changes in %)."""

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:+.0f} %"

    lines = [
        "| arm | NoC@90 first → last block | change | last block vs off | "
        "Dice first → last | jobs (activated) | activated & numerically worse on held-out |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, g in summary.items():
        lines.append(
            f"| {arm} | {g['noc90_first']:.2f} → {g['noc90_last']:.2f} | "
            f"{pct(g['noc90_change'])} | {pct(g['noc90_vs_off_last'])} | "
            f"{g['dice_first']:.3f} → {g['dice_last']:.3f} | {g['jobs']} ({g['activated']}) | "
            f"{g['activated_numerically_worse']} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: Sequence[ArmResult], block: int, n_cases: int, path: Path) -> None:
    """PNG: NoC@90 and first-proposal Dice per block, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in results:
        rows = blocks(r, block, n_cases)
        x = list(range(len(rows)))
        a.plot(x, [row["noc90"] for row in rows], marker="o", label=r.arm)
        b.plot(x, [row["dice"] for row in rows], marker="o", label=r.arm)
    labels = [row["cases"] for row in blocks(results[0], block, n_cases)] if results else []
    a.set_ylabel("NoC@90 (clicks, lower is better)")
    b.set_ylabel("first-proposal Dice")
    for ax in (a, b):
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel("cases (in the order worked)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Simulated annotation session")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def simulate(
    bundle: Path, data: Path, cfg: SimulationConfig, job_options: Any, out: Path
) -> list[ArmResult]:
    """Run every arm on the first ``cfg.cases`` slices of ``data`` (fewer when
    ``cfg.max_minutes`` stops it); write table, JSON, plot."""
    import torch

    from adasam.bundle import read_config
    from adasam.finetune import training_size
    from adasam.training.data import load_folder

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    config = read_config(bundle)
    structures = list(config.structures)
    sliceset = load_folder(data, training_size(config), structures, config.window)
    n = min(cfg.cases, len(sliceset))
    images = sliceset.images[:n]
    gts = sliceset.masks(np.arange(n))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="simulate-", dir=out))
    # one embedding store for the session (frozen encoders): removed with ``work``
    shared = replace(job_options.finetune, embedding_cache=str(work / "embeddings"))
    opts = replace(job_options, progress=False, finetune=shared)
    if not cfg.quiet:
        print(f"arms {', '.join(cfg.arms)}: {n} cases, case by case …", flush=True)
    try:
        results, n = run_arms(bundle, images, gts, structures, cfg, opts, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = goal(results, cfg.block, n)
    table = markdown(results, cfg.block, n) + "\n" + goal_markdown(summary)
    (out / "simulate.md").write_text(table)
    (out / "simulate.json").write_text(
        json.dumps(
            {
                "bundle": str(bundle),
                "data": str(data),
                "cases": n,
                "cases_asked": cfg.cases,
                "config": {k: v for k, v in cfg.__dict__.items()},
                "finetune": json.loads(json.dumps(job_options.finetune.__dict__, default=str)),
                "goal": summary,
                "arms": {
                    r.arm: {"blocks": blocks(r, cfg.block, n), "jobs": r.jobs,
                            "seconds": round(r.seconds, 1)}
                    for r in results
                },
            },
            indent=2,
        )
        + "\n"
    )  # fmt: skip
    plot(results, cfg.block, n, out / "simulate.png")
    return results
