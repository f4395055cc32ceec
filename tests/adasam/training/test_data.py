from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from adasam.errors import ConfigError
from adasam.training.data import (
    DatasetError,
    Split,
    check_split_range,
    load_dataset,
    load_folder,
    make_split,
    parse_labeled,
    random_affine,
    read_split,
    read_split_case_ids,
    warp,
    write_split,
)


def test_load_folder_reads_phantoms(thigh_dir: Path) -> None:
    d = load_folder(thigh_dir, size=64)
    assert d.structures == ("vastus_lateralis", "vastus_medialis")
    assert d.images.shape == (24, 64, 64, 3) and d.images.dtype == np.uint8
    assert d.has_mask.all() and len(set(d.subjects)) == 3
    m = d.masks(np.arange(24))
    assert m.shape == (24, 2, 64, 64)
    np.testing.assert_array_equal(m.any(axis=(2, 3)), d.present)
    assert np.allclose(d.spacing, 230 / 64, atol=0.01)


def test_missing_masks_become_unlabeled_with_csv_presence(thigh_dir: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "partial"
    shutil.copytree(thigh_dir, root)
    gone = sorted((root / "masks").iterdir())[:5]
    for p in gone:
        p.unlink()
    d = load_folder(root, size=64)
    assert d.has_mask.sum() == 19
    full = load_folder(thigh_dir, size=64)
    np.testing.assert_array_equal(d.present, full.present)  # from image_labels.csv


def test_folder_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no images/ folder"):
        load_folder(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="target structures"):
        load_folder(tmp_path)


@pytest.mark.parametrize(
    "spec,expected", [("50", ("count", 50.0)), ("10%", ("fraction", 0.1)), (5, ("count", 5.0))]
)
def test_parse_labeled(spec, expected) -> None:
    assert parse_labeled(spec) == expected


@pytest.mark.parametrize("bad", ["0", "-3", "abc", "150%", "0%"])
def test_parse_labeled_rejects(bad: str) -> None:
    with pytest.raises(DatasetError, match="--labeled"):
        parse_labeled(bad)


def test_split_by_subject_no_leak_exact_counts() -> None:
    subjects = [f"s{i // 10}" for i in range(200)]  # 20 subjects × 10 slices
    has_mask = np.ones(200, bool)
    sp = make_split(subjects, has_mask, "7", seed=3, val_fraction=0.15, test_fraction=0.15)
    parts = {k: {subjects[i] for i in getattr(sp, k)} for k in ("val", "test")}
    train_subj = {subjects[i] for i in sp.labeled + sp.unlabeled}
    assert not (parts["val"] & parts["test"]) and not (train_subj & parts["val"])
    assert not (train_subj & parts["test"])
    assert len(parts["test"]) == 3 and len(parts["val"]) == 3
    assert len(sp.labeled) == 7 and len(sp.labeled) + len(sp.unlabeled) == 140
    assert not set(sp.labeled) & set(sp.unlabeled)
    frac = make_split(subjects, has_mask, "10%", seed=3)
    assert len(frac.labeled) == 14
    assert make_split(subjects, has_mask, "7", seed=3) == sp  # seeded
    assert make_split(subjects, has_mask, "7", seed=4) != sp


def test_split_only_labels_slices_with_masks() -> None:
    subjects = [f"s{i // 4}" for i in range(40)]
    has_mask = np.arange(40) % 2 == 0
    sp = make_split(subjects, has_mask, "50%", seed=0, val_fraction=0, test_fraction=0)
    assert all(has_mask[i] for i in sp.labeled) and len(sp.labeled) == 20
    with pytest.raises(DatasetError, match="only 20"):
        make_split(subjects, has_mask, "21", seed=0, val_fraction=0, test_fraction=0)
    with pytest.raises(DatasetError, match="too few"):
        make_split(["a", "b"], np.ones(2, bool), "1", seed=0)


def test_a_written_split_reads_back_with_its_case_ids(tmp_path: Path) -> None:
    split = Split(labeled=(0, 3), unlabeled=(1,), val=(4, 5), test=(2,))
    path = tmp_path / "split.json"
    write_split(path, split, [f"case{i}" for i in range(6)])
    assert read_split(path, n_slices=6) == split
    assert split.training == (0, 3, 1), "labeled, then unlabeled"
    recorded = json.loads(path.read_text())["case_ids"]
    assert recorded == {"labeled": ["case0", "case3"], "val": ["case4", "case5"], "test": ["case2"]}


def test_a_hand_written_split_needs_only_val(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"labeled": [0, 1], "val": [2]}))
    assert read_split(path) == Split(labeled=(0, 1), unlabeled=(), val=(2,), test=())
    assert read_split_case_ids(path) == {}  # it names no case ids


def test_the_recorded_case_ids_read_back_and_bad_ones_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    write_split(path, Split(labeled=(2, 0), unlabeled=(), val=(1,), test=()), ["a", "b", "c"])
    assert read_split_case_ids(path) == {"labeled": ["c", "a"], "val": ["b"], "test": []}
    for bad in ('{"val": [0], "case_ids": ["a"]}', '{"case_ids": {"labeled": [3]}}', "[1]"):
        path.write_text(bad)
        with pytest.raises(ConfigError) as info:
            read_split_case_ids(path)
        assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match="cannot read"):
        read_split_case_ids(tmp_path / "gone.json")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (None, "cannot read the training split"),
        ("{not json", "is not valid JSON"),
        ("[0, 1, 2]", "must be a JSON object"),
        ('{"labeled": [0, 1]}', "has no 'val' list"),
        ('{"labeled": [0, 1.5], "val": [2]}', "'labeled' must be a list of slice indices"),
        ('{"val": "2"}', "'val' must be a list of slice indices"),
        ('{"val": [2], "test": [-1]}', "'test' must be a list of slice indices"),
        ('{"val": [true]}', "'val' must be a list of slice indices"),
    ],
)
def test_a_missing_or_malformed_split_names_its_file(
    tmp_path: Path, text: str | None, fragment: str
) -> None:
    path = tmp_path / "my_split.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=fragment) as info:
        read_split(path)
    assert str(path) in str(info.value)


def test_a_split_of_other_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"labeled": [0], "unlabeled": [1], "val": [2], "test": [9]}))
    with pytest.raises(ConfigError, match="names slice 9 but the data has 5") as info:
        read_split(path, n_slices=5)
    assert str(path) in str(info.value)
    split = read_split(path, n_slices=10)
    check_split_range(split, 10, path)  # every index below 10: no error
    with pytest.raises(ConfigError, match="names slice 9"):
        check_split_range(split, 9, path)


def test_augmentation_keeps_image_and_mask_aligned() -> None:
    img = torch.zeros(2, 1, 64, 64)
    img[:, :, 20:40, 10:30] = 1.0
    theta = random_affine(2, torch.Generator().manual_seed(0), rotate_deg=20)
    wi = warp(img, theta) > 0.5
    wm = warp(img, theta, nearest=True) > 0.5
    disagree = (wi != wm).float().mean()
    assert disagree < 0.01  # only boundary pixels differ between bilinear and nearest


def test_msd_layout(tmp_path: Path) -> None:
    root = tmp_path / "Task03_Liver"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for case in ("liver_0", "liver_1"):
        vol = np.full((32, 32, 4), -1000, np.float32)
        vol[4:28, 4:28] = 40
        lab = np.zeros((32, 32, 4), np.uint8)
        lab[8:20, 8:16, 1:3] = 1
        affine = np.diag([0.7, 0.7, 2.0, 1])
        nib.save(nib.Nifti1Image(vol, affine), root / "imagesTr" / f"{case}.nii.gz")
        nib.save(nib.Nifti1Image(lab, affine), root / "labelsTr" / f"{case}.nii.gz")
    (root / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "liver"}}))
    d = load_dataset(root, 64, ["liver"])
    assert len(d) == 8 and set(d.subjects) == {"liver_0", "liver_1"}
    np.testing.assert_array_equal(d.present[:, 0], [False, True, True, False] * 2)
    assert d.masks(1)[0].sum() == 12 * 8 * 4  # 12×8 voxels resized ×2 per side
    assert d.spacing[0] == pytest.approx([0.35, 0.35])
    with pytest.raises(DatasetError, match="no label named"):
        load_dataset(root, 64, ["spleen"])
