"""The ADA-SAM training loop: semi-supervised multitask learning with gradient feedback.

Each step takes a batch of labeled slices (masks known) and, when any exist, a batch of
unlabeled slices (image-level labels only):

- classification loss (BCE or focal) on every slice;
- Dice + BCE on the best of SAM's three masks and an MSE on its IoU head, for labeled slices,
  with prompts from the classifier's differentiable CAM (so, with feedback on, the segmentation
  loss trains the classifier too);
- a consistency loss on unlabeled slices: SAM's prediction on an augmented view must match the
  (detached) prediction on the original view warped the same way, with a ramped-up weight.

AdamW, cosine schedule with linear warm-up, mixed precision on CUDA, validation each epoch with
CAM-generated prompts through the production :class:`Predictor`, best bundle by validation Dice,
a resumable checkpoint, a JSONL metrics log and a PNG of the curves.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from adasam.bundle import ModelBundle, create_bundle, load_bundle, save_bundle
from adasam.config import BundleConfig, ClassifierConfig, DomainSettings, LoraSettings, SamConfig
from adasam.domain import embedding_features, fit_domain
from adasam.embedding_store import EmbeddingStore, encoder_identity
from adasam.errors import ConfigError
from adasam.frame import ModelFrame
from adasam.predictor import Predictor
from adasam.sam import adapter_state_dict, load_adapter, load_base_weights
from adasam.training.calibrate import apply as apply_calibration
from adasam.training.calibrate import calibrate
from adasam.training.data import (
    SPLIT_FILE,
    SliceSet,
    Split,
    jitter_intensity,
    load_dataset,
    make_split,
    random_affine,
    warp,
    write_split,
)
from adasam.training.evaluate import evaluate_predictor
from adasam.training.losses import (
    classification_loss,
    consistency_loss,
    dice_bce_per_item,
    mask_iou,
    prob_dice_loss,
    ramp_weight,
)
from adasam.training.model import AdaSamNet, PromptPlan
from adasam.training.train_config import TrainConfig

CHECKPOINT = "checkpoint.pt"
LOG_DIR = "training"


@dataclass
class TrainState:
    epoch: int = 0
    step: int = 0
    best_dice: float = -math.inf  # the best epoch's val_score (see validate)
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batchnorm_frozen(cfg: TrainConfig) -> bool:
    """Whether the classifier's BatchNorm statistics stay fixed (``cfg.freeze_bn``)."""
    if cfg.freeze_bn == "auto":
        return bool(cfg.init_bundle or cfg.init_classifier)
    return cfg.freeze_bn == "on"


def freeze_batchnorm(module: torch.nn.Module) -> int:
    """Put every BatchNorm layer of ``module`` in eval mode (running statistics used and not
    updated; weights and biases still train). Returns how many layers."""
    layers = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.eval()
    return len(layers)


def initial_bundle(cfg: TrainConfig, structures: tuple[str, ...]) -> ModelBundle:
    """A fresh bundle for the run (or the one to fine-tune, ``init_bundle``)."""
    if cfg.init_bundle:
        bundle = load_bundle(cfg.init_bundle)
        if bundle.config.structures != structures:
            raise ConfigError(
                f"init bundle segments {bundle.config.structures}, the data asks for {structures}"
            )
        if cfg.train_decoder and not bundle.config.lora.train_decoder:
            lora = replace(bundle.config.lora, train_decoder=True)
            bundle = replace(bundle, config=replace(bundle.config, lora=lora))
        for n, p in bundle.sam.named_parameters():
            p.requires_grad_("lora_" in n)
        _unfreeze_decoder(bundle)
        return bundle
    if cfg.sam == "litemedsam":
        sam = SamConfig.litemedsam()
    elif cfg.sam == "small":
        sam = SamConfig()
    else:
        sam = SamConfig.public(cfg.sam, cfg.sam_checkpoint)
    bcfg = BundleConfig(
        name=cfg.name or Path(cfg.out).name,
        structures=structures,
        sam=sam,
        lora=LoraSettings(
            r=cfg.lora_r,
            decoder=cfg.lora_decoder,
            train_decoder=cfg.train_decoder,
            encoder=cfg.encoder_lora,
            train_prompt_encoder=cfg.train_prompt_encoder,
        ),
        classifier=ClassifierConfig(
            backbone=cfg.backbone,  # type: ignore[arg-type]
            image_size=cfg.classifier_size,
            output_stride=cfg.output_stride,
        ),  # type: ignore[arg-type]
        window=cfg.window,
        weights_dtype=cfg.weights_dtype,
    )
    bundle = create_bundle(bcfg, seed=cfg.seed)
    if cfg.init_classifier:
        _load_classifier(bundle, Path(cfg.init_classifier))
    if cfg.sam_base:
        from safetensors.torch import load_file

        load_base_weights(bundle.sam, load_file(cfg.sam_base), f"SAM base {cfg.sam_base}")
    _unfreeze_decoder(bundle)
    return bundle


def _load_classifier(bundle: ModelBundle, source: Path) -> None:
    """Strictly load another bundle's classifier weights (same classifier and structures)."""
    from safetensors.torch import load_file

    from adasam.bundle import CLASSIFIER_FILE, read_config
    from adasam.sam import load_strict

    other = read_config(source)
    mine = bundle.config.classifier
    theirs = other.classifier
    same = (mine.backbone, mine.image_size, mine.output_stride) == (
        theirs.backbone,
        theirs.image_size,
        theirs.output_stride,
    )
    if not same or other.structures != bundle.config.structures:
        raise ConfigError(
            f"--init-classifier {source}: its classifier ({theirs.backbone}, "
            f"{theirs.image_size} px, stride {theirs.output_stride}, {other.structures}) does not "
            f"match this run's ({mine.backbone}, {mine.image_size} px, stride "
            f"{mine.output_stride}, {bundle.config.structures})"
        )
    state = {k: v.float() for k, v in load_file(str(source / CLASSIFIER_FILE)).items()}
    load_strict(bundle.classifier, state, f"{source / CLASSIFIER_FILE}")


def _unfreeze_decoder(bundle: ModelBundle) -> None:
    """``lora.train_decoder``: every mask-decoder weight trains (as SAMed does), not only LoRA;
    ``lora.train_prompt_encoder``: every prompt-encoder weight too."""
    if bundle.config.lora.train_decoder:
        for p in bundle.sam.mask_decoder.parameters():
            p.requires_grad_(True)
    if bundle.config.lora.train_prompt_encoder:
        for p in bundle.sam.prompt_encoder.parameters():
            p.requires_grad_(True)


def encoder_frozen(bundle: ModelBundle) -> bool:
    """No image-encoder parameter trains: its embeddings can be computed once and cached."""
    return not any(p.requires_grad for p in bundle.sam.image_encoder.parameters())


def embedding_root(cfg: TrainConfig) -> Path:
    """The embedding store's folder: ``cfg.embedding_cache``, or ``.embeddings`` beside the
    training data's folder."""
    return Path(cfg.embedding_cache or Path(cfg.data).parent / ".embeddings")


def cached_embeddings(
    bundle: ModelBundle, data: SliceSet, cfg: TrainConfig, progress: bool
) -> tuple[torch.Tensor, EmbeddingStore]:
    """Embeddings ``(N, C, e, e)`` float32 of every slice of ``data`` from the frozen encoder,
    read from (and written to) the embedding store."""
    store = EmbeddingStore(embedding_root(cfg), encoder_identity(bundle.config, bundle.sam))
    device = str(next(bundle.sam.parameters()).device)
    images = list(data.images)
    embs = store.fill(
        bundle.sam,
        bundle.config,
        images,
        progress=progress,
        device=device,
        engine=cfg.encode_engine,
    )
    return torch.from_numpy(embs), store


def small_structure_slices(data: SliceSet, idx: Sequence[int], max_area: int) -> np.ndarray:
    """bool ``(len(idx),)``: the slice shows a target structure smaller than ``max_area``
    pixels (and larger than none)."""
    areas = data.masks(np.asarray(idx, dtype=np.int64)).sum(axis=(-2, -1))  # (n, T)
    return ((areas > 0) & (areas < max_area)).any(axis=1)


def epoch_order(
    labeled: Sequence[int], small: np.ndarray, oversample: float, rng: np.random.Generator
) -> np.ndarray:
    """The labeled slices of one epoch, in the order batches take them.

    ``oversample == 0``: a permutation (each slice once). Otherwise ``len(labeled)`` draws with
    replacement, a slice with a small structure (``small``) ``1 + oversample`` times as likely
    as any other, so small targets, which dominate the per-slice Dice lost, are seen more.
    """
    lab = np.asarray(labeled, dtype=np.int64)
    if oversample == 0:
        return lab[rng.permutation(len(lab))]
    w = 1.0 + oversample * np.asarray(small, dtype=float)
    return rng.choice(lab, size=len(lab), replace=True, p=w / w.sum())


def _batch_tensors(
    data: SliceSet, idx: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(data.images[idx]).permute(0, 3, 1, 2).float().to(device)
    masks = torch.from_numpy(data.masks(idx)).to(device)
    present = torch.from_numpy(data.present[idx]).to(device)
    return x, masks, present


def _augment(
    x: torch.Tensor, masks: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    theta = random_affine(x.shape[0], gen).to(x.device)
    xw = jitter_intensity(warp(x, theta).cpu(), gen).to(x.device)
    mw = warp(masks.float(), theta, nearest=True) > 0.5
    return xw, mw


def _plan(
    present: np.ndarray, cfg: TrainConfig, rng: np.random.Generator, allow_gt: bool
) -> PromptPlan:
    pairs = np.argwhere(present)
    if cfg.box_source == "gt" and allow_gt:
        use_gt = np.ones(len(pairs), bool)
    elif cfg.box_source == "mixed" and allow_gt:
        use_gt = rng.random(len(pairs)) < cfg.gt_box_prob
    else:
        use_gt = np.zeros(len(pairs), bool)
    return PromptPlan(pairs, use_gt)


def labeled_loss(
    net: AdaSamNet,
    x: torch.Tensor,
    masks: torch.Tensor,
    present: torch.Tensor,
    cfg: TrainConfig,
    rng: np.random.Generator,
    embedding: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Classification + segmentation (+ IoU head) losses of one labeled batch (``embedding``:
    the batch's cached image embeddings when the encoder is frozen)."""
    plan = _plan(
        present.cpu().numpy() & masks.flatten(2).any(-1).cpu().numpy(), cfg, rng, allow_gt=True
    )
    out = net(x, plan, masks, rng, embedding=embedding)
    losses = {"cls": classification_loss(out.cls_logits, present, cfg.cls_loss)}
    if cfg.w_cam > 0 and len(plan.pairs):
        # optional CAM-alignment term: the CAM of a present structure should cover its mask
        b_idx, t_idx = torch.as_tensor(plan.pairs[:, 0]), torch.as_tensor(plan.pairs[:, 1])
        losses["cam"] = prob_dice_loss(out.cam[b_idx, t_idx], masks[b_idx, t_idx])
    if len(out.kept):
        pairs = plan.pairs[out.kept]
        target = masks[torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1])][:, None]
        n, k = out.full.shape[:2]
        per = dice_bce_per_item(
            out.full.flatten(0, 1), target.expand(-1, k, -1, -1).flatten(0, 1)
        ).view(n, k)
        losses["seg"] = per.min(dim=1).values.mean()
        with torch.no_grad():
            true_iou = mask_iou(out.full, target)
        losses["iou"] = F.mse_loss(out.iou, true_iou)
    else:
        losses["seg"] = losses["iou"] = x.new_zeros(())
    if cfg.click_rounds > 0 and len(plan.pairs):
        emb = net.encode(x) if embedding is None else embedding
        losses["click"] = click_loss(net, emb, masks, plan.pairs, cfg, rng)
    return losses


def warm_up_classifier(
    net: AdaSamNet,
    data: SliceSet,
    split: Split,
    embeddings: torch.Tensor,
    cfg: TrainConfig,
    progress: bool,
) -> None:
    """``cfg.classifier_warmup`` steps of the classifier alone on cached embeddings: the
    classification loss on every training slice (image-level labels) and, where masks are
    known, the CAM-alignment term (weight ``max(cfg.w_cam, 1)``)."""
    classifier = net.bundle.classifier
    opt = torch.optim.AdamW(
        classifier.parameters(), lr=cfg.classifier_lr, weight_decay=cfg.weight_decay
    )
    pool = np.asarray([*split.labeled, *split.unlabeled], dtype=np.int64)
    labeled = np.isin(pool, np.asarray(split.labeled, dtype=np.int64))
    rng = np.random.default_rng([cfg.seed, 7])
    batch = max(4, 2 * cfg.batch_size)
    classifier.train()
    for _ in tqdm(range(cfg.classifier_warmup), desc="classifier warm-up", disable=not progress):
        pick = rng.integers(0, len(pool), batch)
        sel = pool[pick]
        x, masks, present = _batch_tensors(data, sel, embeddings.device)
        logits, cam = net.classify(x, embeddings[sel])
        loss = classification_loss(logits, present, cfg.cls_loss)
        pairs = np.argwhere(labeled[pick][:, None] & masks.flatten(2).any(-1).cpu().numpy())
        if len(pairs):
            b, t = torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1])
            loss = loss + max(cfg.w_cam, 1.0) * prob_dice_loss(cam[b, t], masks[b, t])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def click_loss(
    net: AdaSamNet,
    embedding: torch.Tensor,
    masks: torch.Tensor,
    pairs: np.ndarray,
    cfg: TrainConfig,
    rng: np.random.Generator,
) -> torch.Tensor:
    """SAM's interactive protocol on ``cfg.click_items`` of the batch's (slice, structure)
    pairs: a first prompt, then ``cfg.click_rounds`` corrective clicks sampled from the error
    region with the previous logits fed back (:mod:`adasam.training.interactive`)."""
    from adasam.training.interactive import (
        InteractiveConfig,
        InteractiveItem,
        first_prompt,
        interactive_losses,
    )

    icfg = InteractiveConfig(rounds=cfg.click_rounds, w_distill=0.0, p_cam=0.0)
    chosen = rng.choice(len(pairs), size=min(cfg.click_items, len(pairs)), replace=False)
    items = []
    for b, t in pairs[chosen]:
        gt = masks[b, t].cpu().numpy().astype(bool)
        items.append(InteractiveItem(int(b), gt, first_prompt(gt, rng, icfg)))
    frames = [net.frame] * embedding.shape[0]
    return interactive_losses(net.sam, embedding, frames, items, icfg, rng).total


def unlabeled_loss(
    net: AdaSamNet,
    x: torch.Tensor,
    present: torch.Tensor,
    cfg: TrainConfig,
    rng: np.random.Generator,
    gen: torch.Generator,
    embedding: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Classification loss + consistency between an augmented view and the original.

    With cached embeddings (a frozen encoder) an augmented view has no embedding, so only the
    classification loss is computed."""
    if embedding is not None:
        cls_logits, _ = net.classify(x, embedding)
        return {"cls_u": classification_loss(cls_logits, present, cfg.cls_loss)}
    plan = _plan(present.cpu().numpy(), cfg, rng, allow_gt=False)
    with torch.no_grad():
        teacher = net(x, plan, None, rng)
    theta = random_affine(x.shape[0], gen).to(x.device)
    xs = jitter_intensity(warp(x, theta).cpu(), gen).to(x.device)
    student = net(xs, plan, None, rng)
    losses = {"cls_u": classification_loss(student.cls_logits, present, cfg.cls_loss)}
    both = np.intersect1d(teacher.kept, student.kept)
    if len(both) == 0:
        losses["cons"] = x.new_zeros(())
        return losses
    ti = np.searchsorted(teacher.kept, both)
    si = np.searchsorted(student.kept, both)
    best = teacher.iou[torch.as_tensor(ti)].argmax(dim=1)
    rows = torch.arange(len(both))
    t_prob = torch.sigmoid(teacher.full[torch.as_tensor(ti)][rows, best])[:, None]
    b_idx = torch.as_tensor(plan.pairs[both, 0])
    t_warp = warp(t_prob, theta[b_idx])
    valid = warp(torch.ones_like(t_prob), theta[b_idx]) > 0.99
    s_logits = student.full[torch.as_tensor(si)][rows, best][:, None]
    losses["cons"] = consistency_loss(s_logits, t_warp, valid)
    return losses


def _optimizer(
    bundle: ModelBundle, cfg: TrainConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    groups = [
        {
            "params": [p for p in bundle.classifier.parameters() if p.requires_grad],
            "lr": cfg.classifier_lr,
        },
        {"params": [p for p in bundle.sam.parameters() if p.requires_grad], "lr": cfg.lr},
    ]
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / max(1, cfg.warmup_steps)
        t = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def validate(
    bundle: ModelBundle,
    data: SliceSet,
    idx: list[int],
    device: str,
    store: EmbeddingStore | None = None,
) -> dict[str, float]:
    """CAM-prompted scores on the validation slices (production path): ``val_dice_<name>``
    the mean Dice over slices showing the structure (a miss scores 0); ``val_score_<name>``
    the mean over *all* slices, a slice without the structure scoring 1 when nothing is
    predicted and 0 for a false positive, so that a model that finds the structure everywhere
    is not chosen; ``val_score`` (their mean) picks the best epoch."""
    bundle.classifier.eval()
    bundle.sam.eval()
    predictor = Predictor(bundle, device, cache_size=1, embedding_store=store)
    reports = evaluate_predictor(predictor, data, idx, oracle=False)
    out = {f"val_dice_{r.name}": r.dice[0] for r in reports}
    out["val_dice"] = float(np.nanmean([r.dice[0] for r in reports]))
    for r in reports:
        absent_ok = 0.0 if r.n_absent == 0 else r.n_absent * (1.0 - r.false_positive_rate)
        present = 0.0 if r.n_present == 0 else r.n_present * r.dice[0]
        out[f"val_score_{r.name}"] = (present + absent_ok) / max(1, r.n_present + r.n_absent)
    out["val_score"] = float(np.mean([out[f"val_score_{r.name}"] for r in reports]))
    out.update({f"val_auroc_{r.name}": r.auroc for r in reports})
    return out


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    ep = [h["epoch"] for h in history]
    for key in ("loss", "cls", "seg", "iou", "cons", "cam", "click"):
        if any(key in h for h in history):
            a.plot(ep, [h.get(key, np.nan) for h in history], label=key, marker=".")
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    a.legend()
    a.grid(alpha=0.3)
    for key in sorted({k for h in history for k in h if k.startswith("val_dice")}):
        b.plot(
            ep,
            [h.get(key, np.nan) for h in history],
            label=key.replace("val_dice_", "") if key != "val_dice" else "mean",
            marker=".",
        )
    b.set_xlabel("epoch")
    b.set_ylabel("validation Dice (CAM prompts)")
    b.set_ylim(0, 1)
    b.legend()
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(
    cfg: TrainConfig, data: SliceSet | None = None, resume: bool = False, progress: bool = True
) -> tuple[ModelBundle, TrainState]:
    """Train, validate each epoch, keep the best bundle in ``cfg.out``; returns the final
    in-memory bundle (the last epoch's weights) and the state."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    log_dir = out / LOG_DIR
    data = (
        data if data is not None else load_dataset(cfg.data, cfg.size, cfg.structures, cfg.window)
    )
    split = make_split(
        data.subjects, data.has_mask, cfg.labeled, cfg.seed, cfg.val_fraction, cfg.test_fraction
    )
    device = torch.device(cfg.device)
    bundle = initial_bundle(cfg, data.structures).to(device)
    net = AdaSamNet(bundle, cfg.size, feedback=cfg.feedback, mask_prompt=cfg.mask_prompt)
    embeddings: torch.Tensor | None = None
    store: EmbeddingStore | None = None
    if encoder_frozen(bundle):
        embeddings, store = cached_embeddings(bundle, data, cfg, progress)
    n_lab = len(split.labeled)
    small = (
        small_structure_slices(data, split.labeled, cfg.small_area)
        if cfg.small_oversample
        else np.zeros(n_lab, bool)
    )
    bn_frozen = batchnorm_frozen(cfg)
    steps_per_epoch = cfg.steps_per_epoch or max(1, math.ceil(n_lab / cfg.batch_size))
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    if embeddings is not None and cfg.classifier_warmup and not resume:
        warm_up_classifier(net, data, split, embeddings, cfg, progress)
    opt, sched = _optimizer(bundle, cfg, total)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    state = TrainState()
    ckpt = log_dir / CHECKPOINT
    if resume:
        if not ckpt.is_file():
            raise ConfigError(f"nothing to resume: {ckpt} does not exist")
        saved = torch.load(ckpt, map_location=device, weights_only=False)
        bundle.classifier.load_state_dict(saved["classifier"])
        lora = bundle.config.lora
        load_adapter(bundle.sam, saved["sam"], lora.train_decoder, lora.train_prompt_encoder)
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        state = TrainState(**saved["state"])
        torch.set_rng_state(saved["torch_rng"])
        if saved.get("split") != split.to_dict():
            raise ConfigError("the data or split changed since the checkpoint; start afresh")
    log_dir.mkdir(parents=True, exist_ok=True)
    write_split(log_dir / SPLIT_FILE, split, data.case_ids)
    val_idx = list(split.val[: cfg.val_max])
    start = time.perf_counter() - state.seconds
    epochs = math.ceil(total / steps_per_epoch)
    with tqdm(
        total=total,
        initial=state.step,
        disable=not progress,
        desc="train",
        unit="step",
        dynamic_ncols=True,
    ) as bar:
        while state.step < total:
            epoch = state.epoch
            rng = np.random.default_rng([cfg.seed, epoch])
            gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
            lab = epoch_order(split.labeled, small, cfg.small_oversample, rng)
            unl = np.asarray(split.unlabeled)
            bundle.classifier.train()
            if bn_frozen:
                freeze_batchnorm(bundle.classifier)
            bundle.sam.train()
            sums: dict[str, float] = {}
            n_steps = 0
            for k in range(steps_per_epoch):
                if state.step >= total:
                    break
                sel = lab[(np.arange(cfg.batch_size) + k * cfg.batch_size) % n_lab]
                x, masks, present = _batch_tensors(data, sel, device)
                emb = None if embeddings is None else embeddings[sel].to(device)
                if cfg.augment and emb is None:
                    x, masks = _augment(x, masks, gen)
                with torch.autocast(device.type, enabled=use_amp):
                    losses = labeled_loss(net, x, masks, present, cfg, rng, emb)
                    if (
                        len(unl)
                        and cfg.unlabeled_batch_size
                        and (cfg.w_cons > 0 or emb is not None)
                    ):
                        usel = unl[rng.integers(0, len(unl), cfg.unlabeled_batch_size)]
                        ux, _, upresent = _batch_tensors(data, usel, device)
                        uemb = None if embeddings is None else embeddings[usel].to(device)
                        losses.update(unlabeled_loss(net, ux, upresent, cfg, rng, gen, uemb))
                    w_cons = ramp_weight(
                        state.step, int(cfg.cons_ramp_epochs * steps_per_epoch), cfg.w_cons
                    )
                    loss = (
                        cfg.w_cls * (losses["cls"] + losses.get("cls_u", 0.0))
                        + cfg.w_seg * losses["seg"]
                        + cfg.w_iou * losses["iou"]
                        + w_cons * losses.get("cons", 0.0)
                        + cfg.w_cam * losses.get("cam", 0.0)
                        + cfg.w_click * losses.get("click", 0.0)
                    )
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss became {float(loss)} at step {state.step}; lower the learning rate"
                    )
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                sched.step()
                state.step += 1
                n_steps += 1
                for key, v in {"loss": loss, **losses}.items():
                    sums[key] = sums.get(key, 0.0) + float(
                        v.detach() if isinstance(v, torch.Tensor) else v
                    )
                bar.update(1)
                bar.set_postfix(
                    loss=f"{float(loss.detach()):.3f}",
                    epoch=f"{epoch + 1}/{epochs}",
                    best=f"{max(state.best_dice, 0):.3f}",
                )
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "step": state.step,
                "lr": sched.get_last_lr()[1],
            }
            record.update({k: v / max(1, n_steps) for k, v in sums.items()})
            if val_idx:
                record.update(validate(bundle, data, val_idx, cfg.device, store))
            state.seconds = time.perf_counter() - start
            record["seconds"] = round(state.seconds, 1)
            state.epoch += 1
            state.history.append(record)
            score = record.get("val_score", -record["loss"])
            if score > state.best_dice:
                state.best_dice, state.best_epoch = score, epoch + 1
                _save(bundle, cfg, data, split, state, out)
            bar.set_postfix(
                loss=f"{record['loss']:.3f}",
                val=f"{record.get('val_dice', 0):.3f}",
                best=f"{state.best_dice:.3f}",
            )
            with (log_dir / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(record) + "\n")
            plot_curves(state.history, log_dir / "curves.png")
            out_of_time = cfg.max_minutes is not None and state.seconds > cfg.max_minutes * 60
            torch.save(
                {
                    "classifier": bundle.classifier.state_dict(),
                    "sam": adapter_state_dict(
                        bundle.sam,
                        bundle.config.lora.train_decoder,
                        bundle.config.lora.train_prompt_encoder,
                    ),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "state": asdict(state),
                    "torch_rng": torch.get_rng_state(),
                    "split": split.to_dict(),
                },
                ckpt,
            )
            if out_of_time:
                print(
                    f"stopping after {state.seconds / 60:.1f} min (--max-minutes "
                    f"{cfg.max_minutes}); the best bundle is kept",
                    flush=True,
                )
                break
    if cfg.calibrate and val_idx and (out / "config.json").is_file():
        calib_idx = list(split.val[: cfg.calibrate_max])
        _calibrate_saved(out, data, calib_idx, cfg.device, progress, store)
    if split.val and (out / "config.json").is_file():
        train_idx = [*split.labeled, *split.unlabeled]
        _fit_domain_saved(out, data, train_idx, list(split.val), cfg, embeddings, store)
    return bundle, state


def trained_on(cfg: TrainConfig) -> tuple[str, str, str]:
    """``(description, modality, units)`` of the training slices, for users to read (from the
    dataset's ``dataset.json`` when it has one)."""
    meta: dict[str, Any] = {}
    info = Path(cfg.data) / "dataset.json"
    if info.is_file():
        try:
            meta = json.loads(info.read_text())
        except (OSError, json.JSONDecodeError):
            meta = {}
    modality = str(meta.get("modality", "unknown"))
    units = "HU" if modality == "CT" else "a.u."
    if cfg.trained_on:
        return cfg.trained_on, modality, units
    if str(meta.get("generator", "")).startswith("adasam.phantoms"):
        kind = meta.get("kind", "")
        return (
            f"synthetic {kind} phantoms only (adasam.phantoms), never a real scan",
            modality,
            units,
        )
    return f"the slices of the dataset {Path(cfg.data).name!r}", modality, units


def pooled_features(
    bundle: ModelBundle, data: SliceSet, idx: Sequence[int], embeddings: torch.Tensor | None
) -> np.ndarray:
    """The classifier's pooled features ``(len(idx), K)`` (what its linear head reads)."""
    from adasam.classifier import takes_embedding, to_input

    device = next(bundle.classifier.parameters()).device
    out = []
    with torch.inference_mode():
        for i in idx:
            if takes_embedding(bundle.classifier):
                emb = None if embeddings is None else embeddings[i : i + 1].to(device)
                if emb is None:
                    frame = ModelFrame.for_sam(data.images[i].shape[:2], bundle.config.sam)
                    x = frame.image_to_input(data.images[i], device)
                    emb = bundle.sam.image_encoder(bundle.sam.preprocess(x))
                _, _, pooled = bundle.classifier.forward_all(emb)  # square slices: all valid
            else:
                x = to_input(data.images[i], bundle.config.classifier.image_size).to(device)
                _, _, pooled = bundle.classifier.forward_all(x)
            out.append(pooled[0].float().cpu().numpy())
    return np.stack(out)


def embedding_domain_features(
    bundle: ModelBundle,
    data: SliceSet,
    idx: Sequence[int],
    embeddings: torch.Tensor | None,
    store: EmbeddingStore | None = None,
    progress: bool = False,
) -> np.ndarray:
    """:func:`adasam.domain.embedding_features` ``(len(idx), C)`` of the slices ``idx``, from
    the training run's embeddings when it has them, else the store, else the encoder."""
    out = []
    device = next(bundle.sam.parameters()).device
    with torch.inference_mode():
        for i in tqdm(idx, desc="domain", unit="slice", disable=not progress):
            image = data.images[i]
            frame = ModelFrame.for_sam(image.shape[:2], bundle.config.sam)
            if embeddings is not None:
                emb = embeddings[i : i + 1].to(device)
            else:
                stored = None if store is None else store.get(image)
                if stored is not None:
                    emb = torch.from_numpy(stored)[None].to(device)
                else:
                    x = frame.image_to_input(image, device)
                    emb = bundle.sam.image_encoder(bundle.sam.preprocess(x))
            out.append(embedding_features(emb, frame.embedding_valid(emb.shape[-1]))[0])
    return np.stack(out)


def domain_features(
    bundle: ModelBundle,
    data: SliceSet,
    idx: Sequence[int],
    features: str,
    embeddings: torch.Tensor | None = None,
    store: EmbeddingStore | None = None,
    progress: bool = False,
) -> np.ndarray:
    """The vectors ``(len(idx), K)`` the out-of-domain Gaussian of kind ``features`` models."""
    if features == "sam-embedding":
        return embedding_domain_features(bundle, data, idx, embeddings, store, progress)
    return pooled_features(bundle, data, idx, embeddings)


def fit_bundle_domain(
    bundle: ModelBundle,
    data: SliceSet,
    train_idx: Sequence[int],
    val_idx: Sequence[int],
    settings: DomainSettings,
    embeddings: torch.Tensor | None = None,
    store: EmbeddingStore | None = None,
    progress: bool = False,
    extra_val: Sequence[SliceSet] = (),
) -> ModelBundle:
    """``bundle`` with an out-of-domain Gaussian of kind ``settings.features`` fitted on the
    slices ``train_idx`` and its threshold calibrated on ``val_idx`` plus every slice of
    ``extra_val`` (more in-domain slices, e.g. the same anatomy at other resolutions; any
    slice size) (``settings.threshold``, ``n_fit`` and ``n_val`` are replaced by the fitted
    ones)."""
    train_f, val_f = (
        domain_features(bundle, data, i, settings.features, embeddings, store, progress)
        for i in (train_idx, val_idx)
    )
    extra = [
        domain_features(bundle, s, range(len(s.images)), settings.features, None, store, progress)
        for s in extra_val
    ]
    model = fit_domain(train_f, np.concatenate([val_f, *extra]))
    n_val = len(val_idx) + sum(len(s.images) for s in extra_val)
    settings = replace(settings, threshold=model.threshold, n_fit=len(train_idx), n_val=n_val)
    return ModelBundle(
        replace(bundle.config, domain=settings), bundle.classifier, bundle.sam, model
    )


def _fit_domain_saved(
    out: Path,
    data: SliceSet,
    train_idx: list[int],
    val_idx: list[int],
    cfg: TrainConfig,
    embeddings: torch.Tensor | None,
    store: EmbeddingStore | None = None,
) -> None:
    """Fit the best bundle's out-of-domain Gaussian on the training slices, its threshold on
    the validation slices, and record what the bundle was trained on."""
    best = load_bundle(out, cfg.device)
    description, modality, units = trained_on(cfg)
    grey = data.images[np.asarray(train_idx)].astype(np.float64)
    settings = DomainSettings(
        description=description,
        modality=modality,
        units=units,
        threshold=1.0,  # replaced by the fitted one
        n_fit=len(train_idx),
        n_val=len(val_idx),
        intensity_mean=float(grey.mean()),
        intensity_std=float(grey.std()),
        features=cfg.domain_features,
    )
    fitted = fit_bundle_domain(best, data, train_idx, val_idx, settings, embeddings, store)
    save_bundle(fitted, out)


def _calibrate_saved(
    out: Path,
    data: SliceSet,
    idx: list[int],
    device: str,
    progress: bool,
    store: EmbeddingStore | None = None,
) -> None:
    """Pick the best bundle's presence and CAM thresholds on the validation slices."""
    best = load_bundle(out, device)
    result = calibrate(best, data, idx, device, embedding_store=store)
    calibrated = apply_calibration(best.config, result)
    save_bundle(ModelBundle(calibrated, best.classifier, best.sam, best.domain), out)
    if progress:
        print(
            f"calibrated on {result.n_slices} validation slices: presence threshold "
            f"{result.classifier_threshold}, CAM threshold {result.cam_threshold} "
            f"(validation score {result.previous_score:.3f} → {result.score:.3f})",
            flush=True,
        )


def _save(
    bundle: ModelBundle,
    cfg: TrainConfig,
    data: SliceSet,
    split: Split,
    state: TrainState,
    out: Path,
) -> None:
    best = state.history[-1]
    metrics = {k: v for k, v in best.items() if k.startswith("val_")}
    training = {
        **{k: v for k, v in asdict(cfg).items() if v is not None},
        "n_labeled": len(split.labeled),
        "n_unlabeled": len(split.unlabeled),
        "n_val": len(split.val),
        "best_epoch": state.best_epoch,
        "seconds": round(state.seconds, 1),
    }
    config = replace(
        bundle.config,
        trained=True,
        metrics=metrics,
        training=json.loads(json.dumps(training, default=str)),
    )
    # a bundle fine-tuned from one with a domain model keeps it (config and model together)
    # until the end of the run refits it on this run's slices
    save_bundle(ModelBundle(config, bundle.classifier, bundle.sam, bundle.domain), out)
