"""Model bundles: a directory with ``config.json`` and safetensors weights.

Layout::

    BUNDLE/
      config.json              BundleConfig (structures, window, SAM, LoRA, classifier, prompts…)
      classifier.safetensors   the structure classifier
      adapter.safetensors      the LoRA weights of SAM (+ the mask decoder, lora.train_decoder)
      sam_base.safetensors     SAM's base weights, only when they are not a public checkpoint
                               (or the LiteMedSAM package's, recorded by name/version/sha256)
      domain.safetensors       the out-of-domain Gaussian (mean, precision), when
                               ``config.domain`` is set

Loading is strict and every problem is a :class:`BundleError` that says which file or key.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from adasam.classifier import EmbeddingClassifier, StructureClassifier, build_classifier
from adasam.config import BundleConfig
from adasam.deferred import DeferredEncoder
from adasam.domain import DomainModel
from adasam.errors import BundleError, ConfigError
from adasam.sam import (
    adapter_state_dict,
    base_state_dict,
    build_image_encoder,
    build_lora_sam,
    build_sam,
    load_adapter,
    load_base_weights,
    load_strict,
    merge_adapter,
    read_public_checkpoint,
)
from adasam.sam_modeling import Sam

CONFIG_FILE = "config.json"
CLASSIFIER_FILE = "classifier.safetensors"
ADAPTER_FILE = "adapter.safetensors"
SAM_BASE_FILE = "sam_base.safetensors"
DOMAIN_FILE = "domain.safetensors"
ENCODER = "image_encoder."
"""Key prefix of the image encoder's weights in SAM's state dict."""


@dataclass
class ModelBundle:
    """A loaded bundle: config, classifier and LoRA-adapted SAM (both in eval mode)."""

    config: BundleConfig
    classifier: StructureClassifier | EmbeddingClassifier
    sam: Sam
    domain: DomainModel | None = None

    @property
    def version(self) -> str:
        return self.config.version

    def to(self, device: str | torch.device) -> ModelBundle:
        self.classifier.to(device)
        self.sam.to(device)
        return self


def create_bundle(
    config: BundleConfig, seed: int = 0, load_public_base: bool = True
) -> ModelBundle:
    """A fresh bundle: random classifier, SAM with base weights (public checkpoint when the
    config names one and ``load_public_base``), fresh LoRA (B = 0, so SAM behaves as its base)."""
    torch.manual_seed(seed)
    base = (
        read_public_checkpoint(config.sam)
        if config.sam.base_is_public and load_public_base
        else None
    )
    sam = build_lora_sam(config.sam, config.lora, base)
    classifier = build_classifier(
        config.classifier, len(config.structures), config.sam.prompt_embed_dim
    )
    return ModelBundle(config, classifier.eval(), sam.eval())


def plain_sam(
    config: BundleConfig,
    base: dict[str, torch.Tensor],
    defer_encoder: bool,
    what: str = "the SAM base weights",
) -> torch.nn.Module:
    """SAM without LoRA layers (no peft), ``base`` loaded strictly; with ``defer_encoder``
    (and no LoRA in the encoder) its image encoder a :class:`DeferredEncoder`."""
    encoder = None
    if defer_encoder and not config.lora.encoder:
        encoder = DeferredEncoder(
            {k[len(ENCODER) :]: v for k, v in base.items() if k.startswith(ENCODER)},
            partial(build_image_encoder, config.sam),
            config.sam.image_size,
        )
    sam = build_sam(config.sam, encoder)
    load_strict(sam, base, what)
    return sam


def base_bundle(config: BundleConfig, seed: int = 0) -> ModelBundle:
    """The public base SAM served as it is (zero-shot): no LoRA layers (none is trained, so
    none is built: no peft import), the image encoder deferred until PyTorch runs it, an
    untrained classifier (seeded). For inference only, like a merged bundle."""
    if not config.sam.base_is_public:
        raise BundleError(f"{config.name}: base_bundle needs a public base checkpoint")
    torch.manual_seed(seed)
    sam = plain_sam(config, read_public_checkpoint(config.sam), defer_encoder=True)
    classifier = build_classifier(
        config.classifier, len(config.structures), config.sam.prompt_embed_dim
    )
    return ModelBundle(config, classifier.eval(), sam.eval())


def save_bundle(bundle: ModelBundle, directory: str | Path) -> Path:
    """Write the bundle to ``directory`` atomically (a temporary sibling, then a rename).

    An existing bundle at that path is replaced only after the new one is complete; other
    files and folders in it (e.g. ``training/`` logs) are carried over.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        meta = {"bundle": bundle.config.name, "version": bundle.config.version}
        dtype = getattr(torch, bundle.config.weights_dtype)
        (tmp / CONFIG_FILE).write_text(json.dumps(bundle.config.to_dict(), indent=2) + "\n")
        save_file(_cast(bundle.classifier.state_dict(), dtype), str(tmp / CLASSIFIER_FILE), meta)
        lora = bundle.config.lora
        adapter = adapter_state_dict(bundle.sam, lora.train_decoder, lora.train_prompt_encoder)
        if not any("lora_" in k for k in adapter):
            raise BundleError(
                f"cannot save {bundle.config.name} v{bundle.config.version}: its SAM has no LoRA "
                "layers (it was loaded for inference with load_bundle(..., merged=True)); load "
                "it with merged=False to train or save it"
            )
        save_file(_cast(adapter, dtype), str(tmp / ADAPTER_FILE), meta)
        if not bundle.config.sam.base_is_public:
            save_file(_cast(base_state_dict(bundle.sam), dtype), str(tmp / SAM_BASE_FILE), meta)
        _save_domain(bundle, tmp / DOMAIN_FILE, meta)
        if target.exists():
            own = {CONFIG_FILE, CLASSIFIER_FILE, ADAPTER_FILE, SAM_BASE_FILE, DOMAIN_FILE}
            for extra in target.iterdir():  # keep what is not the bundle's (training logs…)
                if extra.name not in own:
                    os.replace(extra, tmp / extra.name)
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_config(directory: str | Path) -> BundleConfig:
    """Parse and validate ``config.json`` of a bundle directory."""
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise BundleError(
            f"model bundle {directory} does not exist (expected a directory "
            f"with {CONFIG_FILE} and .safetensors files)"
        )
    if not path.is_file():
        raise BundleError(f"{path} is missing: this directory is not a model bundle")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from None
    try:
        return BundleConfig.from_dict(data)
    except ConfigError as exc:
        raise BundleError(f"{path}: {exc}") from None


def load_bundle(
    directory: str | Path,
    device: str | torch.device = "cpu",
    *,
    merged: bool = False,
    defer_encoder: bool = False,
) -> ModelBundle:
    """Load and validate a bundle; every mismatch is a BundleError naming file and key.

    ``merged=False`` (training, saving): SAM with peft LoRA layers, only the adapters trainable.
    ``merged=True`` (inference): the plain SAM with every LoRA pair merged into its base weight
    (:func:`adasam.sam.merge_adapter`): the same weights as merging the peft model, faster
    eager layers, no peft import. Such a bundle predicts, exports and hashes like the other
    but cannot be trained or saved (:func:`save_bundle` refuses it).

    ``defer_encoder`` (with ``merged``, for a serving predictor): the image encoder's weights
    are held by a :class:`adasam.deferred.DeferredEncoder` and its module is built only when
    something runs it in PyTorch (:func:`adasam.deferred.ensure_encoder`); an exported backend
    never does. Ignored when the encoder carries LoRA (``lora.encoder``: merged on load).
    """
    directory = Path(directory)
    config = read_config(directory)
    if config.sam.base_is_public:
        base = read_public_checkpoint(config.sam)
    else:
        base = _read_weights(directory / SAM_BASE_FILE)
    adapter = _read_weights(directory / ADAPTER_FILE)
    what = f"{SAM_BASE_FILE} (SAM base weights)"
    if merged:
        sam = plain_sam(config, base, defer_encoder, what)
        del base
        merge_adapter(sam, adapter, config.lora)
    else:
        sam = build_lora_sam(config.sam, config.lora, None)
        load_base_weights(sam, base, what)
        load_adapter(sam, adapter, config.lora.train_decoder, config.lora.train_prompt_encoder)
    classifier = build_classifier(
        config.classifier, len(config.structures), config.sam.prompt_embed_dim
    )
    load_strict(classifier, _read_weights(directory / CLASSIFIER_FILE), CLASSIFIER_FILE)
    domain = _load_domain(config, directory / DOMAIN_FILE)
    return ModelBundle(config, classifier.eval(), sam.eval(), domain).to(device)


def _save_domain(bundle: ModelBundle, path: Path, meta: dict[str, str]) -> None:
    if (bundle.domain is None) != (bundle.config.domain is None):
        raise BundleError("a bundle's domain model and config.domain go together")
    if bundle.domain is not None:
        arrays = {
            k: torch.from_numpy(v.astype("float64")) for k, v in bundle.domain.to_arrays().items()
        }
        save_file(arrays, str(path), meta)


def _load_domain(config: BundleConfig, path: Path) -> DomainModel | None:
    if config.domain is None:
        return None
    if not path.is_file():
        raise BundleError(f"{path} is missing: config.json has a domain section")
    try:
        arrays = load_file(str(path))
        mean, precision = arrays["mean"].double().numpy(), arrays["precision"].double().numpy()
    except (SafetensorError, OSError, KeyError) as exc:
        raise BundleError(f"{path} is not a readable domain model: {exc}") from None
    if precision.shape != (len(mean), len(mean)):
        raise BundleError(f"{path}: precision {precision.shape} does not fit mean {mean.shape}")
    return DomainModel(mean, precision, config.domain.threshold)


def with_version(bundle: ModelBundle, version: str, **changes: object) -> ModelBundle:
    """The same models under a new config version (and other config changes)."""
    parent = bundle.config.version
    return ModelBundle(
        replace(bundle.config, version=version, parent_version=parent, **changes),  # type: ignore[arg-type]
        bundle.classifier,
        bundle.sam,
        bundle.domain,
    )


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise BundleError(f"{path} is missing from the model bundle")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{path} is not a readable safetensors file: {exc}") from None
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Detached CPU copies; floating tensors cast to ``dtype`` (integer buffers kept)."""
    return {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in state.items()
    }
