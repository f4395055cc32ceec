"""What a fine-tuning run learns from: corrections (+ pseudo-labels, rating repeats) and replay."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adasam.errors import ConfigError
from adasam.finetune import (
    CorrectedCase,
    concat,
    corrections_slices,
    data_hash,
    rating_repeats,
    replay_slices,
    replay_source,
)

STRUCTURES = ["liver", "kidney"]


def _case(cid: int, case: str, structure: str, verdict: str | None = None) -> CorrectedCase:
    image = np.full((40, 40, 3), cid * 10, np.uint8)
    mask = np.zeros((40, 40), bool)
    mask[5 : 10 + cid, 5:15] = True
    return CorrectedCase(cid, case, structure, image, mask, verdict)


def test_rating_repeats_weigh_hard_examples():
    assert [rating_repeats(v) for v in ("accept", "minor_edits", "major_edits", "reject")] == [
        1,
        1,
        2,
        3,
    ]
    assert rating_repeats(None) == 1


def test_corrections_become_label_maps_with_pseudo_labels_and_repeats():
    calls = []

    def pseudo(image: np.ndarray, missing: list[str]) -> dict[str, np.ndarray | None]:
        calls.append(list(missing))
        m = np.zeros(image.shape[:2], bool)
        m[30:35, 30:35] = True
        return {name: m for name in missing}

    cases = [_case(1, "a", "liver", "reject"), _case(2, "b", "liver"), _case(3, "b", "kidney")]
    data = corrections_slices(cases, STRUCTURES, 20, pseudo_label=pseudo, rating_weights=True)
    assert calls == [["kidney"]]  # slice b has both structures corrected: no pseudo-label
    assert len(data) == 3 + 1  # slice a three times (reject), slice b once
    assert data.label_values == {"liver": 1, "kidney": 2}
    masks = data.masks(np.arange(len(data)))
    assert masks[0, 0].any() and masks[0, 1].any()  # liver corrected, kidney pseudo-labelled
    assert data.present.tolist() == [[True, True]] * 4
    assert data.subjects == ["a", "a", "a", "b"]
    flat = corrections_slices(cases, STRUCTURES, 20, pseudo_label=None, rating_weights=False)
    assert len(flat) == 2 and flat.present.tolist() == [[True, False], [True, True]]
    with pytest.raises(ConfigError, match="no 'spleen'"):
        corrections_slices([_case(4, "c", "spleen")], STRUCTURES, 20, pseudo_label=None,
                           rating_weights=True)  # fmt: skip


def _dataset(root: Path, n: int) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(n):
        Image.fromarray(np.full((32, 32), 40 + k, np.uint8)).save(root / "images" / f"c{k}.png")
        lab = np.zeros((32, 32), np.uint8)
        lab[2:10, 2:10] = 7  # kidney is 7 in this dataset, liver 3
        lab[12:20, 12:20] = 3
        Image.fromarray(lab).save(root / "masks" / f"c{k}.png")
    (root / "dataset.json").write_text(json.dumps({"labels": {"liver": 3, "kidney": 7}}))
    return root


def _bundle(root: Path, data: str, labeled: list[str]) -> Path:
    (root / "training").mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"training": {"data": data}}))
    (root / "training" / "split.json").write_text(json.dumps({"case_ids": {"labeled": labeled}}))
    return root


def test_replay_samples_the_recorded_labeled_slices_with_our_label_numbers(tmp_path):
    data = _dataset(tmp_path / "data", 6)
    bundle = _bundle(tmp_path / "bundle", str(data), ["c0", "c2", "c4", "c5"])
    assert replay_source(bundle) == (str(data), ["c0", "c2", "c4", "c5"])
    replay, info = replay_slices(bundle, STRUCTURES, 16, 3, seed=0, window=None)
    assert info["used"] == 3 and len(replay) == 3
    assert set(info["case_ids"]) <= {"c0", "c2", "c4", "c5"}  # never an unlabeled-split slice
    assert replay.label_values == {"liver": 1, "kidney": 2}
    masks = replay.masks(np.arange(3))
    assert masks[:, 0, 8, 8].all() and masks[:, 1, 3, 3].all()  # liver at 12:20, kidney at 2:10
    again, _ = replay_slices(bundle, STRUCTURES, 16, 3, seed=0, window=None)
    assert again.case_ids == replay.case_ids  # seeded
    corr = corrections_slices([_case(1, "x", "liver")], STRUCTURES, 16, pseudo_label=None,
                              rating_weights=True)  # fmt: skip
    mixed = concat(corr, replay)
    assert len(mixed) == 4 and mixed.subjects[0] == "x" and mixed.subjects[1].startswith("replay")


def test_replay_reads_the_split_that_training_writes(tmp_path):
    from adasam.training.data import Split, write_split

    bundle = _bundle(tmp_path / "bundle", "data/x", [])
    split = Split(labeled=(0, 2), unlabeled=(1,), val=(3,), test=())
    write_split(bundle / "training" / "split.json", split, ["c0", "c1", "c2", "c3"])
    assert replay_source(bundle) == ("data/x", ["c0", "c2"])  # the labeled part, by case id


def test_replay_says_why_it_is_unavailable(tmp_path):
    bundle = _bundle(tmp_path / "bundle", str(tmp_path / "gone"), ["c0"])
    replay, info = replay_slices(bundle, STRUCTURES, 16, 3, seed=0, window=None)
    assert replay is None and "is not here" in info["reason"]
    (tmp_path / "plain").mkdir()
    assert replay_slices(tmp_path / "plain", STRUCTURES, 16, 3, 0, None)[1]["reason"] == (
        "the bundle records no training data"
    )


def test_data_hash_changes_with_the_data():
    a, b = _case(1, "a", "liver"), _case(2, "b", "liver")
    assert data_hash([a, b]) == data_hash([b, a])
    assert data_hash([a, b]) != data_hash([a])
    assert data_hash([a], ["r1"]) != data_hash([a])
