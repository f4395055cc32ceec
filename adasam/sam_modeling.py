"""segment-anything's model classes, imported without the package's ``__init__``.

``import segment_anything`` runs its ``__init__``, which imports the predictor and the automatic
mask generator and through them torchvision, whose ``ops`` package imports ``torch._dynamo`` and
sympy: about 145 MiB of a serving process's memory that inference never uses. The model classes
live in ``segment_anything.modeling``, which needs none of it, so it is imported here under a
parent package whose ``__init__`` has not run. The parent is then taken out of ``sys.modules``,
so a later ``import segment_anything`` (the bench's ``SamPredictor``) runs its ``__init__`` as
usual and finds these same classes (one ``Sam`` class in the process, not two).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType


def import_submodule_alone(package: str, submodule: str) -> ModuleType:
    """``package.submodule`` imported without running ``package/__init__.py`` (when the
    package is not imported yet; otherwise as usual). The parent stays out of ``sys.modules``
    afterwards, so a later ``import package`` runs its ``__init__`` and finds the submodule.

    Raises:
        ImportError: the package is not installed (the message says how to install it).
    """
    name = f"{package}.{submodule}"
    if name in sys.modules or package in sys.modules:
        return importlib.import_module(name)
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise ImportError(
            f"the package {package!r} is not installed; install the requirements: "
            "pip install -r requirements.txt"
        )
    sys.modules[package] = importlib.util.module_from_spec(spec)  # __init__ not executed
    try:
        return importlib.import_module(name)
    finally:
        del sys.modules[package]


_modeling = import_submodule_alone("segment_anything", "modeling")
ImageEncoderViT = _modeling.ImageEncoderViT
MaskDecoder = _modeling.MaskDecoder
PromptEncoder = _modeling.PromptEncoder
Sam = _modeling.Sam
TwoWayTransformer = _modeling.TwoWayTransformer

__all__ = [
    "ImageEncoderViT",
    "MaskDecoder",
    "PromptEncoder",
    "Sam",
    "TwoWayTransformer",
    "import_submodule_alone",
]
