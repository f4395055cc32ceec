"""Segmentation and classification metrics on numpy arrays.

Conventions (documented in the evaluation report):

- Dice and IoU of two empty masks are 1.0 (nothing to find, nothing found); of an empty and a
  non-empty mask 0.0.
- HD95 is the 95th percentile of the symmetric surface distances, in mm when the spacing is
  known (pixels otherwise). Both empty: 0. Exactly one empty: the image diagonal (in the same
  unit) — the largest distance possible in the image, so a miss is penalised and finite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    p, g = pred.astype(bool), gt.astype(bool)
    s = p.sum() + g.sum()
    return 1.0 if s == 0 else float(2 * (p & g).sum() / s)


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    p, g = pred.astype(bool), gt.astype(bool)
    u = (p | g).sum()
    return 1.0 if u == 0 else float((p & g).sum() / u)


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), border_value=0)


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """95th-percentile symmetric Hausdorff distance between the two masks' surfaces."""
    p, g = pred.astype(bool), gt.astype(bool)
    sp = tuple(float(s) for s in spacing) if spacing is not None else (1.0, 1.0)
    if not p.any() and not g.any():
        return 0.0
    if not p.any() or not g.any():
        return float(math.hypot(p.shape[0] * sp[0], p.shape[1] * sp[1]))
    sp_, sg = _surface(p), _surface(g)
    dt_g = ndimage.distance_transform_edt(~sg, sampling=sp)
    dt_p = ndimage.distance_transform_edt(~sp_, sampling=sp)
    d = np.concatenate([dt_g[sp_], dt_p[sg]])
    return float(np.percentile(d, 95))


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve (Mann-Whitney U with tie correction); NaN with one class."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    r = np.empty(len(s))
    r[order] = np.arange(1, len(s) + 1)
    _, inv = np.unique(s, return_inverse=True)  # average ranks over ties
    r = (np.bincount(inv, weights=r) / np.bincount(inv))[inv]
    u = r[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std())
