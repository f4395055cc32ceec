"""The command line's shape: one registration list, flags generated from typed configs."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from adasam import cli
from adasam.commands.fields import add_fields, comma_list, from_args
from adasam.errors import ConfigError
from adasam.settings import Settings
from adasam.training.train_config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
EXPECTED = {"predict", "phantoms", "train", "evaluate", "pretrain-sam", "compare", "bench"}


def test_help_lists_every_registered_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "adasam", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {cli.command_name(m) for m in cli.COMMANDS}
    assert names >= EXPECTED
    for module in cli.COMMANDS:
        assert cli.command_name(module) in out
        assert callable(module.add_arguments) and callable(module.run)


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; from adasam.cli import build_parser; build_parser(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_every_train_config_field_is_a_flag_with_help() -> None:
    parser = argparse.ArgumentParser()
    add_fields(parser, TrainConfig)
    flags = {opt for action in parser._actions for opt in action.option_strings}
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("help"), f.name
        dashed = f.name.replace("_", "-")
        assert f"--{dashed}" in flags or f"--no-{dashed}" in flags, f.name


def test_flags_map_back_to_the_config() -> None:
    parser = argparse.ArgumentParser()
    add_fields(parser, TrainConfig)
    args = parser.parse_args(["--data", "d", "--out", "o", "--labeled", "6"])
    assert from_args(TrainConfig, args) == TrainConfig(data="d", out="o", labeled="6")
    args = parser.parse_args(
        [
            "--data",
            "d",
            "--out",
            "o",
            "--labeled",
            "10%",
            "--structures",
            "a,b",
            "--no-feedback",
            "--train-decoder",
            "--box-source",
            "gt",
            "--max-minutes",
            "2.5",
            "--output-stride",
            "16",
        ]
    )
    cfg = from_args(TrainConfig, args)
    assert cfg.structures == ("a", "b") and cfg.feedback is False and cfg.train_decoder
    assert cfg.box_source == "gt" and cfg.max_minutes == 2.5 and cfg.output_stride == 16
    with pytest.raises(SystemExit):  # choices come from the Literal annotation
        parser.parse_args(["--data", "d", "--out", "o", "--labeled", "1", "--box-source", "x"])
    with pytest.raises(SystemExit):  # --labeled is required although the config has a default
        parser.parse_args(["--data", "d", "--out", "o"])


def test_a_field_without_help_is_refused() -> None:
    @dataclasses.dataclass
    class Bare:
        x: int = 1

    with pytest.raises(TypeError, match="help"):
        add_fields(argparse.ArgumentParser(), Bare)


def test_comma_list() -> None:
    assert comma_list(" a, b,,c ") == ("a", "b", "c")


def test_train_and_evaluate_take_the_device_from_adasam_device(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import adasam.predictor
    import adasam.training.loop

    seen: dict[str, str] = {}

    def fake_train(cfg: TrainConfig, **_: object) -> None:
        seen["train"] = cfg.device
        raise ConfigError("stop here")

    def fake_from_dir(bundle: object, device: str, **_: object) -> None:
        seen["evaluate"] = device
        raise ConfigError("stop here")

    monkeypatch.setattr(adasam.training.loop, "train", fake_train)
    monkeypatch.setattr(adasam.predictor.Predictor, "from_dir", fake_from_dir)
    monkeypatch.setenv("ADASAM_DEVICE", "cuda:7")
    base = ["--data", str(tmp_path), "--out", str(tmp_path / "o")]
    assert cli.main(["train", *base, "--labeled", "5"]) == 2
    assert cli.main(["evaluate", *base, "--bundle", str(tmp_path)]) == 2
    assert seen == {"train": "cuda:7", "evaluate": "cuda:7"}
    assert cli.main(["train", *base, "--labeled", "5", "--device", "cpu"]) == 2
    assert seen["train"] == "cpu", "the flag wins over the environment"


def test_bad_environment_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    monkeypatch.setenv("ADASAM_MAX_PIXELS", "lots")
    rc = cli.main(["phantoms", "--kind", "thigh-mri", "--n", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == "error: ADASAM_MAX_PIXELS='lots' is not a whole number"


def test_phantoms_bad_values_exit_2(tmp_path: Path, capsys) -> None:
    rc = cli.main(["phantoms", "--kind", "thigh-mri", "--n", "0", "--out", str(tmp_path)])
    assert rc == 2 and "--n must be at least 1" in capsys.readouterr().err


def test_settings_have_no_dead_fields() -> None:
    names = {f.name for f in dataclasses.fields(Settings)}
    assert names == {
        "data_dir",
        "device",
        "bundle_dir",
        "database_url",
        "max_pixels",
        "embed_cache_size",
        "llm_endpoint",  # the SegEx LLM observer (Settings.llm_config)
        "llm_model",
        "llm_token",
        "llm_timeout_s",
        "backend",  # the encoder/classifier backend (adasam.backends)
        "cache_dir",  # exported ONNX graphs
        "embed_cache_mb",  # the embedding cache's byte bound
        "embed_cache_dtype",  # how it holds embeddings (Predictor cache_dtype)
        "model_repo",  # published model versions (storage.model_hub)
        "hub_token",
        "allow_burned_in",  # DICOMs flagged BurnedInAnnotation=YES (adasam.imaging.deid)
        "request_seconds",  # the per-request time budget (adasam.budget)
    }
