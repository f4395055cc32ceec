"""ADASAM_MODEL_REPO is checked when the environment is read (a bad value: exit 2 at start)."""

from __future__ import annotations

import pytest


def test_the_setting_is_checked_when_the_environment_is_read() -> None:
    from adasam.errors import ConfigError
    from adasam.settings import Settings

    assert Settings.from_env({"ADASAM_MODEL_REPO": " lab/models "}).model_repo == "lab/models"
    assert Settings.from_env({"ADASAM_MODEL_REPO": "/srv/m"}).model_repo == "/srv/m"
    assert Settings.from_env({}).model_repo == ""
    with pytest.raises(ConfigError, match="ADASAM_MODEL_REPO"):
        Settings.from_env({"ADASAM_MODEL_REPO": "just-a-name"})
