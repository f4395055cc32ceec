"""The environment parsing helpers of :mod:`adasam.settings` (shared with the studio)."""

from __future__ import annotations

import pytest

from adasam.errors import ConfigError
from adasam.settings import Settings, flag, positive_int


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), (" yes ", True), ("on", True), ("0", False), ("off", False)],
)
def test_flag_reads_yes_and_no_words(raw: str, expected: bool) -> None:
    assert flag({"X_FLAG": raw}, "X_FLAG") is expected


def test_flag_and_positive_int_fall_back_to_the_default_when_unset_or_blank() -> None:
    assert flag({}, "X_FLAG", True) is True and flag({"X_FLAG": "  "}, "X_FLAG") is False
    assert positive_int({}, "X_N", 7) == 7 and positive_int({"X_N": " "}, "X_N", 7) == 7
    assert positive_int({"X_N": " 12 "}, "X_N", 7) == 12


def test_bad_values_name_the_variable_and_what_it_should_be() -> None:
    cases = [
        (lambda: flag({"X_FLAG": "maybe"}, "X_FLAG"), "must be 1/0, true/false, yes/no or on/off"),
        (lambda: positive_int({"X_N": "ten"}, "X_N", 1), "is not a whole number"),
        (lambda: positive_int({"X_N": "0"}, "X_N", 1), "must be positive, got 0"),
    ]
    expected = ["X_FLAG='maybe' ", "X_N='ten' ", "X_N "]
    for (parse, tail), head in zip(cases, expected, strict=True):
        with pytest.raises(ConfigError) as info:
            parse()
        assert str(info.value) == head + tail


def test_settings_use_them() -> None:
    with pytest.raises(ConfigError, match="ADASAM_ALLOW_BURNED_IN='sometimes'"):
        Settings.from_env({"ADASAM_ALLOW_BURNED_IN": "sometimes"})
    with pytest.raises(ConfigError, match="ADASAM_EMBED_CACHE must be positive"):
        Settings.from_env({"ADASAM_EMBED_CACHE": "-1"})
