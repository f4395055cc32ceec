"""Out-of-domain detection: a Gaussian density of a slice's features.

A bundle's classifier has only seen its training slices (for the demo bundles, synthetic
phantoms). On anything else its "found, p = 0.99" means nothing. :class:`DomainModel` fits a
Gaussian to a feature vector of the training slices and scores a new slice by its Mahalanobis
distance; the threshold is calibrated on held out validation slices (a high quantile of their
distances, times a margin). Stored in a bundle as ``domain.safetensors`` (mean, precision) with
the settings in ``config.json`` (``DomainSettings.features`` says which vector):

- ``"classifier"`` (the default): the classifier's pooled features, what its linear head
  reads. Robust to the slice's resolution (256², 384² and 512² phantoms of the bundle's kind
  all score far below the threshold), but a classifier trained on one kind can map another kind
  near its own: the thigh bundle accepts some liver phantoms.
- ``"sam-embedding"``: :func:`embedding_features`, the channel means of the SAM image embedding
  over the image's own (unpadded) area. It separates other kinds of image far better (measured
  on the demo bundles' training slices: the other phantom kind at ≥ 2× the threshold, pydicom's
  CT/MR slices at ≥ 5×) but it also rejects the bundle's own anatomy at another resolution
  (thigh phantoms generated at 384² or 512² score 14–21 against a threshold of 11.9: the
  area-downsampled slice has other noise statistics), so it is an option, not the default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class DomainModel:
    """Mean ``(K,)`` and precision ``(K, K)`` (float64) of the training features, and the
    largest in-domain Mahalanobis distance ``threshold``."""

    mean: np.ndarray
    precision: np.ndarray
    threshold: float

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distances ``(N,)`` of features ``(N, K)`` (or one ``(K,)`` vector)."""
        d = np.atleast_2d(np.asarray(features, dtype=np.float64)) - self.mean
        return np.sqrt(np.maximum(np.einsum("nk,kl,nl->n", d, self.precision, d), 0.0))

    def score(self, features: np.ndarray) -> float:
        return float(self.scores(features)[0])

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "precision": self.precision}


def fit_gaussian(features: np.ndarray, shrinkage: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Mean and precision of ``(N, K)`` features with the covariance shrunk toward its
    diagonal's mean (``(1 − s)·Σ + s·mean(diag Σ)·I``), so few slices still give a stable,
    invertible estimate."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need (N ≥ 2, K) features to fit a domain model, got {x.shape}")
    mean = x.mean(axis=0)
    cov = np.cov(x, rowvar=False)
    cov = np.atleast_2d(cov)
    target = np.eye(len(cov)) * max(float(np.mean(np.diag(cov))), 1e-12)
    cov = (1.0 - shrinkage) * cov + shrinkage * target
    return mean, np.linalg.pinv(cov)


def fit_domain(
    train_features: np.ndarray,
    val_features: np.ndarray,
    quantile: float = 0.99,
    margin: float = 1.25,
) -> DomainModel:
    """Fit on training features; threshold = ``margin`` × the ``quantile`` of the validation
    distances (held-out slices of the training domain must pass)."""
    mean, precision = fit_gaussian(train_features)
    model = DomainModel(mean, precision, float("inf"))
    val = model.scores(val_features)
    threshold = float(np.quantile(val, quantile) * margin)
    return DomainModel(mean, precision, threshold)


def embedding_features(embedding: torch.Tensor, valid: np.ndarray | None = None) -> np.ndarray:
    """Channel means ``(B, C)`` float32 of SAM image embeddings ``(B, C, h, w)`` over the
    image's own area: ``valid`` ``(h, w)`` bool marks the embedding cells the image covers
    (:meth:`adasam.frame.ModelFrame.embedding_valid`; None: all), so zero padding of a
    non-square slice does not shift the statistics."""
    emb = embedding.detach().float()
    if emb.ndim != 4:
        raise ValueError(f"embedding must be (B, C, h, w), got {tuple(emb.shape)}")
    if valid is None:
        return emb.mean(dim=(2, 3)).cpu().numpy()
    mask = torch.from_numpy(np.asarray(valid, dtype=bool)).to(emb.device)
    if mask.shape != emb.shape[-2:] or not bool(mask.any()):
        raise ValueError(f"valid must be a non-empty {tuple(emb.shape[-2:])} mask")
    return emb[:, :, mask].mean(dim=2).cpu().numpy()
