from __future__ import annotations

import json

import pytest

from adasam.config import BundleConfig, ClassifierConfig, LoraSettings, SamConfig
from adasam.errors import ConfigError
from adasam.prompts import PromptConfig
from tests.conftest import tiny_config


def test_json_round_trip_is_identity() -> None:
    cfg = tiny_config(
        prompts=PromptConfig(threshold=0.3, use_point=True),
        window="ct-abdomen",
        metrics={"dice": {"liver": 0.9}},
    )
    again = BundleConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_unknown_key_is_named() -> None:
    data = tiny_config().to_dict()
    data["lora"]["rank"] = 4
    with pytest.raises(ConfigError, match=r"config\.lora: unknown key\(s\) \['rank'\]"):
        BundleConfig.from_dict(data)


def test_unknown_key_inside_an_optional_section_is_named() -> None:
    from adasam.config import DomainSettings

    domain = DomainSettings("phantoms", "MR", "a.u.", 3.0, 10, 5, 40.0, 20.0)
    data = tiny_config(domain=domain).to_dict()
    data["domain"]["featurez"] = "sam-embedding"  # a typo, or a newer bundle format
    with pytest.raises(ConfigError, match=r"config\.domain: unknown key\(s\) \['featurez'\]"):
        BundleConfig.from_dict(data)


def test_wrong_types_are_named() -> None:
    data = tiny_config().to_dict()
    data["sam"]["image_size"] = "big"
    with pytest.raises(ConfigError, match="image_size"):
        BundleConfig.from_dict(data)
    data = tiny_config().to_dict()
    data["classifier"]["backbone"] = "vgg16"
    with pytest.raises(ConfigError, match="backbone"):
        BundleConfig.from_dict(data)


def test_public_sam_architectures_are_fixed() -> None:
    cfg = SamConfig.public("vit_b", checkpoint="/x/sam_vit_b_01ec64.pth")
    assert cfg.image_size == 1024 and cfg.mask_size == 256 and cfg.base_is_public
    with pytest.raises(ConfigError, match="fixed architecture"):
        SamConfig(model_type="vit_b")
    with pytest.raises(ConfigError, match="unknown public SAM"):
        SamConfig.public("vit_x")


@pytest.mark.parametrize(
    "build",
    [
        lambda: SamConfig(image_size=250, patch_size=8),
        lambda: SamConfig(hub_repo="facebook/sam"),
        lambda: SamConfig(checkpoint="a.pth", hub_repo="r", hub_filename="f"),
        lambda: LoraSettings(r=0),
        lambda: LoraSettings(dropout=1.0),
        lambda: ClassifierConfig(image_size=100),
        lambda: ClassifierConfig(threshold=1.5),
        lambda: tiny_config(structures=()),
        lambda: tiny_config(structures=("a", "a")),
    ],
)
def test_invalid_values_raise_config_error(build) -> None:
    with pytest.raises(ConfigError):
        build()
