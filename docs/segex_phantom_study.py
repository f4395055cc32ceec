"""A small SegEx study on phantoms: two simulated raters of different strictness.

Masks to rate: the ground-truth VL/VM mask of fresh thigh-MRI phantoms (seed 2027, never used
for choosing anything) perturbed by a random erosion/dilation and shift; the clinician's final
mask is the ground truth, so Dice(original, final) is the mask's true quality. Each rater sees
that Dice plus perception noise N(0, 0.04) and maps it to a score with their own thresholds
(lenient: 5 >= .88, 4 >= .78, 3 >= .62, 2 >= .40; strict: 5 >= .95, 4 >= .88, 3 >= .78,
2 >= .60). The study goes through the real storage worklist (blinded, 2 ratings per case).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

import storage
from adasam.agreement import agreement_report
from adasam.agreement_output import report_text, write_csv, write_plots
from adasam.imaging import apply_window, auto_window
from adasam.imaging.windows import gray_to_rgb
from adasam.phantoms import STRUCTURES, generate
from adasam.segex import rating_rows

SEED, N = 2027, 40
THRESHOLDS = {"lenient": (0.88, 0.78, 0.62, 0.40), "strict": (0.95, 0.88, 0.78, 0.60)}
VERDICT = {5: "accept", 4: "minor_edits", 3: "major_edits", 2: "major_edits", 1: "reject"}


def perturb(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = int(rng.integers(-4, 5))
    out = mask
    if k > 0:
        out = ndimage.binary_dilation(mask, iterations=k)
    elif k < 0:
        out = ndimage.binary_erosion(mask, iterations=-k)
    dy, dx = (int(v) for v in rng.integers(-5, 6, size=2))
    return np.roll(out, (dy, dx), axis=(0, 1))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)


def score(d: float, rater: str, rng: np.random.Generator) -> int:
    seen = d + rng.normal(0, 0.04)
    for value, threshold in zip((5, 4, 3, 2), THRESHOLDS[rater], strict=True):
        if seen >= threshold:
            return value
    return 1


def main(out: Path) -> None:
    rng = np.random.default_rng(SEED)
    data = out / "data"
    with storage.open_store(f"sqlite:///{data / 'study.sqlite3'}", data) as store:
        for name in ("lenient", "strict", "gt"):
            storage.ensure_annotator(store, name)
        storage.ensure_annotator(store, "admin", role="admin")
        structures = STRUCTURES["thigh-mri"]
        for case in generate("thigh-mri", n=N, seed=SEED):
            display = gray_to_rgb(apply_window(case.image, auto_window(case.image)))
            record = storage.record_slice(
                store,
                content_hash=storage.pixels_hash(case.image.astype(np.float32)),
                pixels=case.image.astype(np.float32),
                display=display,
                modality="MR",
            )
            for name in ("vastus_lateralis", "vastus_medialis"):
                gt = case.label == structures[name]
                if gt.sum() < 50:
                    continue
                pred = storage.record_prediction(
                    store, slice_hash=record.content_hash, structure=name,
                    candidates=[perturb(gt, rng)], scores=[0.5],
                )  # fmt: skip
                storage.record_correction(
                    store, prediction_id=pred.id, chosen_rank=0, final_mask=gt,
                    annotator="gt", seconds=1.0,
                )  # fmt: skip
        cases = storage.corrected_candidates(store)
        study = storage.create_study(
            store, name="phantom-pilot", admin="admin", raters=["lenient", "strict"],
            candidate_ids=cases, ratings_per_case=2, seed=SEED,
        )  # fmt: skip
        true: dict[int, float] = {}
        for rater in ("lenient", "strict"):
            while (case := storage.next_study_case(store, "phantom-pilot", rater)) is not None:
                d = true.get(case.candidate_id)
                if d is None:
                    mask = storage.load_candidate_mask(store, case.candidate_id)
                    sl = storage.get_slice(store, case.slice_hash)
                    final = next(
                        f.mask for f in storage.final_masks(store)
                        if f.slice.content_hash == sl.content_hash and f.structure == case.structure
                    )  # fmt: skip
                    d = true[case.candidate_id] = dice(mask, final)
                s = score(d, rater, rng)
                storage.record_study_rating(
                    store, "phantom-pilot", rater=rater, candidate_id=case.candidate_id,
                    score=s, verdict=VERDICT[s], seconds=float(rng.uniform(5, 20)), edits=1,
                )  # fmt: skip
        rows = rating_rows(store, study="phantom-pilot")
        report = agreement_report(rows)
        print(f"study {study.name}: {len(cases)} cases, {len(rows)} ratings")
        print(f"true Dice of the rated masks: mean {np.mean(list(true.values())):.3f}, "
              f"range {min(true.values()):.3f}..{max(true.values()):.3f}")  # fmt: skip
        print(report_text(report))
        write_csv(report, rows, out / "report")
        write_plots(report, rows, out / "report")
        print(f"tables and plots: {out / 'report'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
