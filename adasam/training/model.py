"""The ADA-SAM model as trained: classifier → differentiable CAM → mask prompt → LoRA-SAM.

The segmentation loss reaches the classifier through the dense mask prompt:
``mask_logits = gain · (CAM·region − threshold)`` with ``CAM = ReLU(Σ w·A) / max`` computed from
the classifier's own features and head weights (:meth:`StructureClassifier.forward_with_cam`).
With ``feedback=False`` (SAM-Mix) the CAM is detached before it becomes a prompt, so the
classifier gets no gradient from segmentation. Boxes come from the thresholded CAM (not
differentiable), or from the ground truth with jitter when the plan says so.

Images are float ``(B, 3, S, S)`` in 0..255, all of one size ``S`` (the training size).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adasam.bundle import ModelBundle
from adasam.classifier import normalise, takes_embedding
from adasam.frame import ModelFrame
from adasam.prompts import cam_region, cam_to_mask_logits, mask_to_box


@dataclass(frozen=True)
class PromptPlan:
    """Which (image, structure) pairs get a prompt, and how.

    Attributes:
        pairs: ``(N, 2)`` int array of (batch index, structure index).
        use_gt_box: bool ``(N,)``: jittered ground-truth box instead of the CAM box.
    """

    pairs: np.ndarray
    use_gt_box: np.ndarray


@dataclass
class Outputs:
    """What one forward pass gives.

    ``low``: ``(N, 3, L, L)`` decoder logits; ``iou``: ``(N, 3)`` predicted IoU; ``full``:
    ``(N, 3, S, S)`` logits at the training size; ``kept``: indices into the plan's pairs that
    got a prompt (a pair whose CAM region is empty and has no GT box is dropped).
    """

    cls_logits: torch.Tensor
    cam: torch.Tensor
    low: torch.Tensor
    iou: torch.Tensor
    full: torch.Tensor
    kept: np.ndarray


def jitter_box(
    box: np.ndarray, size: int, rng: np.random.Generator, amount: float = 0.1
) -> np.ndarray:
    """Move each side of an XYXY box by up to ``amount`` × its width/height, clipped."""
    w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
    d = rng.uniform(-amount, amount, 4) * np.array([w, h, w, h])
    out = box + d
    out = np.clip(out, 0, size - 1)
    out[2], out[3] = max(out[2], out[0]), max(out[3], out[1])
    return out


class AdaSamNet(nn.Module):
    """Training wrapper around a bundle's classifier and LoRA-SAM.

    Args:
        bundle: the models (trained in place) and their config.
        size: training image size ``S``.
        feedback: let the segmentation loss reach the classifier through the mask prompt.
        mask_prompt: give SAM the CAM mask prompt at all (False: box only, e.g. the oracle).
    """

    def __init__(
        self, bundle: ModelBundle, size: int, feedback: bool = True, mask_prompt: bool = True
    ) -> None:
        super().__init__()
        self.bundle = bundle
        self.classifier = bundle.classifier
        self.sam = bundle.sam
        self.size = size
        self.feedback = feedback
        self.mask_prompt = mask_prompt
        c = bundle.config
        self.frame = ModelFrame.for_sam((size, size), c.sam)

    def classify(
        self, x: torch.Tensor, embedding: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, T)`` and CAMs ``(B, T, S, S)`` in [0, 1] (differentiable). A
        ``sam-embedding`` classifier reads ``embedding`` (computed here when None)."""
        if takes_embedding(self.classifier):
            emb = self.encode(x) if embedding is None else embedding
            valid = torch.from_numpy(self.frame.embedding_valid(emb.shape[-1])).to(emb.device)
            logits, cam = self.classifier.forward_with_cam(emb, valid[None, None])
            return logits, self.frame.lowres_to_original(cam)
        logits, cam = self.classifier.forward_with_cam(
            normalise(x, self.bundle.config.classifier.image_size)
        )
        cam = F.interpolate(cam, (self.size, self.size), mode="bilinear", align_corners=False)
        return logits, cam

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.sam.image_encoder(self.sam.preprocess(self.frame.resize_input(x)))

    def forward(
        self,
        x: torch.Tensor,
        plan: PromptPlan,
        gt_masks: torch.Tensor | None,
        rng: np.random.Generator,
        embedding: torch.Tensor | None = None,
    ) -> Outputs:
        """One pass. ``gt_masks``: bool ``(B, T, S, S)`` where known (for GT boxes)."""
        cfg = self.bundle.config.prompts
        if embedding is None and takes_embedding(self.classifier):
            embedding = self.encode(x)
        cls_logits, cam = self.classify(x, embedding)
        cam_np = cam.detach().float().cpu().numpy()
        prompt_cam = cam if self.feedback else cam.detach()
        boxes, masks, kept = [], [], []
        for n, (b, t) in enumerate(plan.pairs):
            region = cam_region(cam_np[b, t], cfg.threshold, cfg.components, cfg.min_area)
            box = None
            if gt_masks is not None and (plan.use_gt_box[n] or not region.any()):
                gt_box = mask_to_box(gt_masks[b, t].cpu().numpy())
                box = None if gt_box is None else jitter_box(gt_box, self.size, rng)
            if box is None and not plan.use_gt_box[n]:
                box = mask_to_box(region)
            if box is None:
                continue
            kept.append(n)
            boxes.append(box)
            if self.mask_prompt:
                masks.append(
                    cam_to_mask_logits(
                        prompt_cam[b, t][None],
                        torch.from_numpy(region).to(cam.device)[None],
                        self.frame,
                        cfg.threshold,
                        cfg.logit_gain,
                    )
                )
        emb = self.encode(x) if embedding is None else embedding
        lows, ious = [], []
        kept_arr = np.asarray(kept, dtype=np.int64)
        box_t = torch.as_tensor(
            self.frame.boxes_to_model(np.array(boxes).reshape(-1, 4)),
            dtype=torch.float32,
            device=x.device,
        )
        mask_t = torch.cat(masks) if masks else None
        for b in np.unique(plan.pairs[kept_arr, 0]) if kept else []:
            sel = np.flatnonzero(plan.pairs[kept_arr, 0] == b)
            sparse, dense = self.sam.prompt_encoder(
                points=None,
                boxes=box_t[sel],
                masks=None if mask_t is None else mask_t[torch.as_tensor(sel)],
            )
            low, iou = self.sam.mask_decoder(
                image_embeddings=emb[b : b + 1],
                image_pe=self.sam.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
            )
            lows.append((sel, low))
            ious.append((sel, iou))
        if kept:
            order = np.concatenate([s for s, _ in lows])
            low = torch.cat([v for _, v in lows])[torch.as_tensor(np.argsort(order))]
            iou = torch.cat([v for _, v in ious])[torch.as_tensor(np.argsort(order))]
        else:
            m = self.frame.mask_size
            low = x.new_zeros((0, 3, m, m))
            iou = x.new_zeros((0, 3))
        full = (
            self.frame.lowres_to_original(low)
            if kept
            else x.new_zeros((0, 3, self.size, self.size))
        )
        return Outputs(cls_logits, cam, low, iou, full, kept_arr)
