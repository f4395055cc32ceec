"""An image encoder whose module is built only when something runs it in PyTorch.

A serving predictor under an exported backend never runs SAM's eager image encoder: the backend
runs its exported graph, found by the bundle's hash (:func:`adasam.export.bundle_hash`, computed
from the weights). Building the encoder anyway costs its construction and, for LiteMedSAM, the
import of the packaged TinyViT, which imports timm, torchvision and through them
``torch._dynamo`` and sympy: about 175 MiB of the studio's memory. :class:`DeferredEncoder`
holds the encoder's weights (its state dict, as the built module would give it) and builds the
module on :func:`ensure_encoder`: the PyTorch backend, the exporter and the int8 calibration call
it. Running a deferred encoder directly is an error that says what to call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn


def _as_loaded(value: torch.Tensor) -> torch.Tensor:
    """What ``load_state_dict`` leaves in a float32 module: floating tensors become float32."""
    return value.float() if value.is_floating_point() else value


class DeferredEncoder(nn.Module):
    """Stands in for SAM's image encoder until :meth:`build`.

    ``state``: the encoder's state dict (keys without the ``image_encoder.`` prefix); ``build``
    makes the untrained module; ``img_size``: the side ``Sam.preprocess`` pads to. Its
    ``state_dict()`` is the built module's (same keys, float32), so hashes computed from it
    (:func:`adasam.export.bundle_hash`, :func:`adasam.embedding_store.encoder_identity`) are
    the built encoder's; ``load_state_dict`` replaces the held tensors, key for key.
    """

    def __init__(
        self, state: Mapping[str, torch.Tensor], build: Callable[[], nn.Module], img_size: int
    ) -> None:
        super().__init__()
        self._state = OrderedDict((k, _as_loaded(v)) for k, v in state.items())
        self._build = build
        self.img_size = img_size

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        for key, value in self._state.items():
            destination[prefix + key] = value

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, torch.Tensor],
        prefix: str,
        local_metadata: Any,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        for key in self._state:
            if prefix + key in state_dict:
                self._state[key] = _as_loaded(state_dict[prefix + key])
            elif strict:
                missing_keys.append(prefix + key)
        unexpected_keys += [
            k for k in state_dict if k.startswith(prefix) and k[len(prefix) :] not in self._state
        ]

    def build(self) -> nn.Module:
        """The encoder module with these weights (strictly loaded), in eval mode."""
        from adasam.sam import load_strict

        module = self._build()
        load_strict(module, self._state, "the image encoder's weights")
        return module.eval()

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        raise RuntimeError(
            "this SAM's image encoder is deferred (a serving predictor's exported backend runs "
            "it): call adasam.deferred.ensure_encoder(sam) before running it in PyTorch"
        )


def ensure_encoder(sam: nn.Module) -> nn.Module:
    """``sam.image_encoder``, built first if it was deferred (then kept in ``sam``), on the
    device of SAM's other weights."""
    encoder = sam.image_encoder
    if isinstance(encoder, DeferredEncoder):
        device = next(sam.mask_decoder.parameters()).device
        encoder = encoder.build().to(device)
        sam.image_encoder = encoder
    return encoder  # type: ignore[return-value]


__all__ = ["DeferredEncoder", "ensure_encoder"]
