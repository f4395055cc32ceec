"""Training data: 2D slice folders and MSD/nnU-Net volumes, split by subject.

Every dataset becomes a :class:`SliceSet`: display images (uint8 ``(H, W, 3)``, all resized to
one training size), optional label maps, image-level presence labels for the target structures,
and the subject of each slice (a volume or a patient), which is what splits are made over so no
subject leaks between train, validation and test.

Folder layout (what ``python -m adasam phantoms`` writes)::

    ROOT/images/<case>.png|.npy|.dcm|.nii.gz   slices (any format adasam.imaging reads)
    ROOT/masks/<case>.png                      integer label maps, same basename (optional)
    ROOT/image_labels.csv                      case_id,subject,<structure>,... 0/1 (optional)
    ROOT/dataset.json                          {"labels": {name: value}, "targets": [...]}

Slices without a mask are unlabeled (image-level labels only) whatever the split says.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from adasam.errors import AdaSamError, ConfigError
from adasam.imaging import load_slice, with_preferred_window

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".dcm", ".nii", ".nii.gz")


class DatasetError(AdaSamError):
    """A training dataset is missing files or is inconsistent."""


@dataclass
class SliceSet:
    """Slices in memory, all of one size.

    Attributes:
        images: uint8 ``(N, S, S, 3)``.
        labels: uint8 ``(N, S, S)`` label maps (0 where unlabeled; see ``has_mask``).
        has_mask: bool ``(N,)``, whether the slice's label map is known.
        present: bool ``(N, T)``, image-level label of each target structure.
        structures: the T target structure names; ``label_values[name]`` is its label value.
        subjects, case_ids: per slice.
        spacing: float ``(N, 2)`` row/col spacing in mm of the *resized* slice (NaN unknown).
    """

    images: np.ndarray
    labels: np.ndarray
    has_mask: np.ndarray
    present: np.ndarray
    structures: tuple[str, ...]
    label_values: dict[str, int]
    subjects: list[str]
    case_ids: list[str]
    spacing: np.ndarray
    meta: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.case_ids)

    def masks(self, index: int | np.ndarray) -> np.ndarray:
        """bool ``(..., T, S, S)`` target masks of the given slice(s)."""
        lab = self.labels[index]
        vals = np.array([self.label_values[s] for s in self.structures], dtype=np.uint8)
        return lab[..., None, :, :] == vals.reshape(-1, 1, 1)

    def subset(self, index: Sequence[int]) -> SliceSet:
        idx = np.asarray(index, dtype=np.int64)
        return SliceSet(
            self.images[idx],
            self.labels[idx],
            self.has_mask[idx],
            self.present[idx],
            self.structures,
            self.label_values,
            [self.subjects[i] for i in idx],
            [self.case_ids[i] for i in idx],
            self.spacing[idx],
            self.meta,
        )


def _resize(img: np.ndarray, size: int, nearest: bool) -> np.ndarray:
    if img.shape[0] == size and img.shape[1] == size:
        return img
    mode = Image.NEAREST if nearest else Image.BILINEAR
    return np.asarray(Image.fromarray(img).resize((size, size), mode))


def _stem(path: Path) -> str:
    name = path.name
    for suf in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return path.stem


def load_folder(
    root: str | Path,
    size: int = 256,
    structures: Sequence[str] | None = None,
    window: str | None = None,
    limit: int | None = None,
) -> SliceSet:
    """Load a slice folder (see module docstring) resized to ``size × size``."""
    root = Path(root)
    img_dir = root / "images"
    if not img_dir.is_dir():
        raise DatasetError(
            f"{root} has no images/ folder; expected images/, masks/ and "
            "optionally image_labels.csv and dataset.json"
        )
    info = (
        json.loads((root / "dataset.json").read_text()) if (root / "dataset.json").is_file() else {}
    )
    label_values: dict[str, int] = {str(k): int(v) for k, v in info.get("labels", {}).items()}
    all_labels = sorted(set(label_values.values()) - {0})
    targets = tuple(structures or info.get("targets") or label_values)
    if not targets:
        raise DatasetError(
            f"{root}: name the target structures (--structures or dataset.json 'targets')"
        )
    rows = _read_labels_csv(root / "image_labels.csv")
    missing = [
        t
        for t in targets
        if t not in label_values and not (rows and t in next(iter(rows.values())))
    ]
    if missing:
        raise DatasetError(
            f"{root}: structure(s) {missing} are neither in dataset.json labels "
            "nor in image_labels.csv"
        )
    files = sorted(p for p in img_dir.iterdir() if p.name.lower().endswith(IMAGE_SUFFIXES))
    if limit is not None:
        files = files[:limit]
    if not files:
        raise DatasetError(f"{img_dir} holds no images")
    n = len(files)
    images = np.zeros((n, size, size, 3), np.uint8)
    labels = np.zeros((n, size, size), np.uint8)
    has_mask = np.zeros(n, bool)
    present = np.zeros((n, len(targets)), bool)
    spacing = np.full((n, 2), np.nan)
    subjects, case_ids = [], []
    for i, path in enumerate(files):
        case = _stem(path)
        sl = with_preferred_window(load_slice(path, name=path.name), window)
        h, w = sl.shape
        images[i] = _resize(sl.display, size, nearest=False)
        if sl.spacing:
            spacing[i] = (sl.spacing[0] * h / size, sl.spacing[1] * w / size)
        elif info.get("spacing_mm"):
            sp = info["spacing_mm"]
            spacing[i] = (sp[0] * h / size, sp[1] * w / size)
        mask_path = root / "masks" / f"{case}.png"
        if mask_path.is_file():
            lab = np.asarray(Image.open(mask_path))
            if lab.shape != (h, w):
                raise DatasetError(f"{mask_path} is {lab.shape}, its image is {(h, w)}")
            labels[i] = _resize(lab.astype(np.uint8), size, nearest=True)
            has_mask[i] = True
        row = rows.get(case)
        for t, name in enumerate(targets):
            if row is not None and name in row:
                present[i, t] = row[name] == "1"
            elif has_mask[i] and name in label_values:
                present[i, t] = bool((labels[i] == label_values[name]).any())
            else:
                raise DatasetError(f"{case}: no mask and no image-level label for {name!r}")
        subjects.append(row.get("subject", case) if row else _subject_of(case))
        case_ids.append(case)
    for name in targets:
        label_values.setdefault(name, 0)
    return SliceSet(
        images,
        labels,
        has_mask,
        present,
        targets,
        label_values,
        subjects,
        case_ids,
        spacing,
        {"root": str(root), "kind": info.get("kind"), "all_labels": all_labels},
    )


def _subject_of(case: str) -> str:
    """Fallback subject id: the case id without a trailing slice number."""
    return re.sub(r"[_-]?\d+$", "", case) or case


def _read_labels_csv(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "case_id" not in reader.fieldnames:
            raise DatasetError(f"{path} must have a header starting with case_id")
        return {row["case_id"]: row for row in reader}


def load_msd(
    root: str | Path,
    structures: Sequence[str],
    size: int = 256,
    window: str | None = "ct-abdomen",
    axis: int = 2,
    every: int = 1,
    max_slices: int | None = None,
) -> SliceSet:
    """Medical Segmentation Decathlon / nnU-Net v2 raw layout cut into slices.

    ``imagesTr/<case>.nii.gz`` (or ``<case>_0000.nii.gz``), ``labelsTr/<case>.nii.gz``,
    ``dataset.json`` with ``labels`` as ``{"0": "background", "1": "liver"}`` (MSD) or
    ``{"background": 0, "liver": 1}`` (nnU-Net v2). Each volume is a subject. Slices are taken
    along ``axis`` after canonical (RAS) reorientation, in the same display orientation as
    :func:`adasam.imaging.load_slice`, every ``every``-th slice.
    """
    from adasam.imaging import load_volume_slices

    root = Path(root)
    info_path = root / "dataset.json"
    if not info_path.is_file():
        raise DatasetError(f"{root} has no dataset.json (expected the MSD / nnU-Net raw layout)")
    raw = json.loads(info_path.read_text()).get("labels", {})
    label_values = {}
    for k, v in raw.items():
        if str(k).isdigit():
            label_values[str(v)] = int(k)
        else:
            label_values[str(k)] = int(v)
    unknown = [s for s in structures if s not in label_values]
    if unknown:
        raise DatasetError(
            f"{info_path}: no label named {unknown}; labels are {sorted(label_values)}"
        )
    label_dir = root / "labelsTr"
    images, labels, subjects, case_ids, spacing = [], [], [], [], []
    for lab_path in sorted(label_dir.glob("*.nii*")):
        case = _stem(lab_path)
        candidates = [
            root / "imagesTr" / f"{case}{s}"
            for s in (".nii.gz", "_0000.nii.gz", ".nii", "_0000.nii")
        ]
        img_path = next((p for p in candidates if p.is_file()), None)
        if img_path is None:
            raise DatasetError(f"no image in imagesTr/ for label {lab_path.name}")
        img_slices = load_volume_slices(img_path, axis=axis, window=window)
        lab_slices = load_volume_slices(lab_path, axis=axis, window=None, labels=True)
        if len(img_slices) != len(lab_slices):
            raise DatasetError(f"{case}: image and label volumes differ in depth")
        for k in range(0, len(img_slices), every):
            sl, lab = img_slices[k], lab_slices[k]
            h, w = sl.shape
            images.append(_resize(sl.display, size, nearest=False))
            labels.append(_resize(np.rint(lab.pixels).astype(np.uint8), size, nearest=True))
            subjects.append(case)
            case_ids.append(f"{case}_{k:04d}")
            sp = sl.spacing or (math.nan, math.nan)
            spacing.append((sp[0] * h / size, sp[1] * w / size))
            if max_slices and len(images) >= max_slices:
                break
        if max_slices and len(images) >= max_slices:
            break
    if not images:
        raise DatasetError(f"{label_dir} holds no label volumes")
    lab_arr = np.stack(labels)
    targets = tuple(structures)
    vals = np.array([label_values[s] for s in targets], np.uint8)
    present = (lab_arr[:, None] == vals[None, :, None, None]).any(axis=(2, 3))
    return SliceSet(
        np.stack(images),
        lab_arr,
        np.ones(len(images), bool),
        present,
        targets,
        label_values,
        subjects,
        case_ids,
        np.array(spacing),
        {"root": str(root)},
    )


def native_size(path: str | Path) -> int:
    """The longest side in pixels of the first slice of a folder dataset (``ROOT/images``), to
    load it at its own resolution. Raises :class:`DatasetError` when there is no slice."""
    folder = Path(path) / "images"
    files = sorted(p for p in folder.glob("*") if p.name.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise DatasetError(f"{folder}: no slice ({', '.join(IMAGE_SUFFIXES)}) to read")
    return int(max(load_slice(files[0]).display.shape[:2]))


def load_dataset(
    path: str | Path, size: int, structures: Sequence[str] | None = None, window: str | None = None
) -> SliceSet:
    """Folder dataset or MSD layout, recognised by its content."""
    path = Path(path)
    if (path / "imagesTr").is_dir():
        if not structures:
            raise DatasetError("an MSD/nnU-Net dataset needs --structures NAME[,NAME]")
        return load_msd(path, structures, size, window or "ct-abdomen")
    return load_folder(path, size, structures, window)


# -- splits -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """Indices into a SliceSet. ``labeled`` ∪ ``unlabeled`` is the training part."""

    labeled: tuple[int, ...]
    unlabeled: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]

    def to_dict(self) -> dict[str, list[int]]:
        return {k: [int(i) for i in getattr(self, k)] for k in SPLIT_KEYS}

    @property
    def training(self) -> tuple[int, ...]:
        """The training part: ``labeled`` then ``unlabeled``."""
        return (*self.labeled, *self.unlabeled)


SPLIT_KEYS = ("labeled", "unlabeled", "val", "test")
SPLIT_FILE = "split.json"  # in BUNDLE/training/: write_split at training, read_split after


def write_split(path: Path, split: Split, case_ids: Sequence[str]) -> None:
    """Record ``split`` at ``path`` (:func:`read_split` reads the indices back,
    :func:`read_split_case_ids` the case ids): its indices, and the
    case ids of its labeled, validation and test slices (fine-tuning replays the labeled ones)."""
    named = {k: [case_ids[i] for i in getattr(split, k)] for k in ("labeled", "val", "test")}
    Path(path).write_text(json.dumps({**split.to_dict(), "case_ids": named}) + "\n")


def read_split(path: Path, n_slices: int | None = None) -> Split:
    """The split recorded in ``path`` (a bundle's ``training/split.json``).

    Training writes it with :func:`write_split` (:meth:`Split.to_dict` plus the case ids);
    a hand-written one (``--split``) may name only what its command uses: ``val`` is required,
    ``labeled``, ``unlabeled`` and ``test`` default to empty, other keys (``case_ids``) are
    ignored. Every index is a non-negative integer, and below ``n_slices`` when given (see
    :func:`check_split_range`). Which part a command trains on is its own choice
    (``labeled`` for click training, :attr:`Split.training` for the domain fit).

    Raises :class:`~adasam.errors.ConfigError` naming ``path`` when the file is missing,
    not JSON, or not such a split.
    """
    raw = _split_json(path)
    if "val" not in raw:
        raise ConfigError(f"the training split {path} has no 'val' list")
    parts = {k: _split_indices(raw.get(k, []), k, path) for k in SPLIT_KEYS}
    split = Split(**parts)
    if n_slices is not None:
        check_split_range(split, n_slices, path)
    return split


def read_split_case_ids(path: Path) -> dict[str, list[str]]:
    """The case ids :func:`write_split` recorded in ``path`` beside the indices, by part
    (``labeled``, ``val``, ``test``); ``{}`` when the file names none (a hand-written split).

    Only the ``case_ids`` object is read: fine-tuning replays the ``labeled`` slices by case id
    (the indices point into a dataset as it was loaded then), so a file holding the case ids
    alone is enough here. Raises :class:`~adasam.errors.ConfigError` naming ``path`` when the
    file is missing, not JSON, or its ``case_ids`` is not an object of lists of strings.
    """
    named = _split_json(path).get("case_ids", {})
    ok = isinstance(named, dict) and all(
        isinstance(ids, list) and all(isinstance(c, str) for c in ids) for ids in named.values()
    )
    if not ok:
        raise ConfigError(
            f"the training split {path}: 'case_ids' must map parts to lists of case ids, "
            f"got {str(named)[:60]}"
        )
    return {str(k): list(v) for k, v in named.items()}


def _split_json(path: Path) -> dict[str, Any]:
    """The JSON object of a split file (ConfigError naming ``path`` otherwise)."""
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the training split {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"the training split {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"the training split {path} must be a JSON object with a 'val' list")
    return raw


def _split_indices(value: object, key: str, path: Path) -> tuple[int, ...]:
    ok = isinstance(value, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value
    )
    if not ok:
        raise ConfigError(
            f"the training split {path}: '{key}' must be a list of slice indices "
            f"(integers ≥ 0), got {str(value)[:60]}"
        )
    return tuple(value)  # type: ignore[arg-type]


def check_split_range(split: Split, n_slices: int, path: Path) -> None:
    """Raise :class:`~adasam.errors.ConfigError` when ``split`` names a slice the data (of
    ``n_slices``) does not have: the split belongs to other data."""
    highest = max((*split.training, *split.val, *split.test), default=-1)
    if highest >= n_slices:
        raise ConfigError(
            f"the split {path} names slice {highest} but the data has {n_slices}: "
            "is this the bundle's training data?"
        )


def parse_labeled(spec: str | int) -> tuple[str, float]:
    """``"50"`` → ("count", 50); ``"10%"`` → ("fraction", 0.1)."""
    s = str(spec).strip()
    try:
        if s.endswith("%"):
            p = float(s[:-1])
            if not 0 < p <= 100:
                raise ValueError
            return "fraction", p / 100.0
        n = int(s)
        if n < 1:
            raise ValueError
        return "count", float(n)
    except ValueError:
        raise DatasetError(
            f"--labeled must be a count (e.g. 50) or a percentage (e.g. 10%), got {spec!r}"
        ) from None


def make_split(
    subjects: Sequence[str],
    has_mask: np.ndarray,
    labeled: str | int,
    seed: int,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> Split:
    """Split by subject into train/val/test, then pick the labeled training slices.

    Subjects are shuffled with ``seed`` and assigned to test, then validation, by their
    fraction of all subjects (at least one each when the fraction is > 0). Training slices with a
    mask are shuffled and the first ``N`` (count) or ``round(P × n_train_slices)`` (fraction,
    at least 1) become labeled; every other training slice is unlabeled (image-level label only).
    Validation and test keep only slices with masks.
    """
    rng = np.random.default_rng(seed)
    uniq = sorted(set(subjects))
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    n_test = math.ceil(test_fraction * len(uniq)) if test_fraction > 0 else 0
    n_val = math.ceil(val_fraction * len(uniq)) if val_fraction > 0 else 0
    if n_test + n_val >= len(uniq):
        raise DatasetError(
            f"only {len(uniq)} subjects: too few for validation and test splits "
            "plus training; lower the fractions or add data"
        )
    test_s, val_s = set(order[:n_test]), set(order[n_test : n_test + n_val])
    idx = np.arange(len(subjects))
    test = [i for i in idx if subjects[i] in test_s and has_mask[i]]
    val = [i for i in idx if subjects[i] in val_s and has_mask[i]]
    train = [i for i in idx if subjects[i] not in test_s and subjects[i] not in val_s]
    kind, amount = parse_labeled(labeled)
    with_mask = [i for i in train if has_mask[i]]
    want = int(amount) if kind == "count" else max(1, round(amount * len(train)))
    if want > len(with_mask):
        raise DatasetError(
            f"asked for {want} labeled slices but the training subjects have only "
            f"{len(with_mask)} slices with masks"
        )
    chosen = [with_mask[i] for i in rng.permutation(len(with_mask))[:want]]
    chosen_set = set(chosen)
    unl = [i for i in train if i not in chosen_set]
    return Split(
        tuple(int(i) for i in sorted(chosen)),
        tuple(int(i) for i in unl),
        tuple(int(i) for i in val),
        tuple(int(i) for i in test),
    )


# -- augmentation -------------------------------------------------------------------------------
def random_affine(
    n: int,
    gen: torch.Generator,
    rotate_deg: float = 10.0,
    scale: tuple[float, float] = (0.9, 1.1),
    translate: float = 0.05,
) -> torch.Tensor:
    """``(n, 2, 3)`` affine matrices for ``F.affine_grid`` (normalised coordinates)."""
    ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(rotate_deg)
    s = scale[0] + torch.rand(n, generator=gen) * (scale[1] - scale[0])
    t = (torch.rand(n, 2, generator=gen) * 2 - 1) * translate * 2
    cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
    return torch.stack(
        [torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1
    )


def warp(x: torch.Tensor, theta: torch.Tensor, nearest: bool = False) -> torch.Tensor:
    """Apply affine ``theta`` to ``(n, C, H, W)`` (zeros outside). Image and mask stay aligned
    when warped with the same ``theta`` (bilinear for images, nearest for masks)."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(
        x,
        grid,
        mode="nearest" if nearest else "bilinear",
        padding_mode="zeros",
        align_corners=False,
    )


def jitter_intensity(x: torch.Tensor, gen: torch.Generator, strength: float = 0.15) -> torch.Tensor:
    """Random contrast, brightness, gamma and noise on float ``(n, 3, H, W)`` in 0..255."""
    n = x.shape[0]
    c = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * strength
    b = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * strength * 60
    g = torch.exp((torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * strength)
    y = ((x / 255.0).clamp(0, 1) ** g) * 255.0
    y = (y - 128) * c + 128 + b
    y = y + torch.randn(x.shape, generator=gen) * strength * 20
    return y.clamp(0, 255)
