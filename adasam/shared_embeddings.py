"""Image embeddings one predictor lends another that runs the same frozen encoder.

The studio's zero-shot LiteMedSAM (drawn prompts on a slice outside the chosen model's domain)
and a demo bundle trained with its encoder frozen run the very same TinyViT weights: the
bundle's predictor has already encoded the slice when the domain check sent the user to draw a
box, so encoding it again (about a second in eager PyTorch on two cores) buys nothing.
:class:`LentEmbeddings` is an :class:`adasam.predictor.EmbeddingSource` that answers from the
caches of other loaded predictors whose :meth:`Predictor.shared_encoder` names the same fp32
encoder, and from nowhere else: a miss means the borrower encodes the slice itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from adasam.predictor import Predictor


class LentEmbeddings:
    """``get(image)``: the embedding ``(C, e, e)`` float32 that one of ``lenders()`` holds for
    ``image``, when that predictor's encoder is ``encoder`` (a :meth:`Predictor.shared_encoder`
    name; None lends nothing), else None.

    Args:
        encoder: the borrower's own :meth:`Predictor.shared_encoder`.
        lenders: the predictors loaded now (called on every lookup; cheap, no I/O).
    """

    def __init__(self, encoder: str | None, lenders: Callable[[], Iterable[Predictor]]) -> None:
        self.encoder = encoder
        self.lenders = lenders
        self.lent = 0  # embeddings handed over so far (the studio's log, the tests)

    def get(self, image: np.ndarray) -> np.ndarray | None:
        if self.encoder is None:
            return None
        for predictor in self.lenders():
            if predictor.shared_encoder() != self.encoder:
                continue
            held = predictor.held_embedding(image)
            if held is not None:
                self.lent += 1
                return held
        return None
