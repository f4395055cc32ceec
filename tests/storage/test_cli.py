"""``python -m storage``: the commands the lead and the CI call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from storage.cli import main
from storage.store import Store


@pytest.fixture
def cli_store(
    sqlite_store: Store, sqlite_samples, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> Store:
    """Settings.from_env() pointed at a store holding one corrected and rated slice."""
    monkeypatch.setenv("ADASAM_DATA_DIR", str(sqlite_store.data_dir))
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    s = sqlite_samples.slice()
    sqlite_samples.correction(sqlite_samples.prediction(s))
    return sqlite_store


def test_stats_and_check(cli_store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["slices"], stats["corrections"]) == (1, 1)
    assert main(["check"]) == 0
    assert capsys.readouterr().out.strip().endswith("ok")


def test_check_reports_a_corrupt_blob(cli_store: Store, capsys) -> None:
    digest = next(iter(cli_store.blobs))
    cli_store.blobs.path_for(digest).write_bytes(b"bit rot")
    assert main(["check"]) == 1
    assert f"blob {digest} does not match its hash" in capsys.readouterr().out


def test_backup_then_restore_with_a_folder(
    cli_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    assert main(["backup", "--folder", str(tmp_path / "remote")]) == 0
    assert "new blobs" in capsys.readouterr().out
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("ADASAM_DATA_DIR", str(fresh))
    monkeypatch.delenv("DATABASE_URL")
    assert main(["restore", "--folder", str(tmp_path / "remote")]) == 0
    assert capsys.readouterr().out.strip() == "restored"
    assert (fresh / "adasam.sqlite3").exists()
    assert main(["restore", "--folder", str(tmp_path / "remote")]) == 0
    assert "nothing restored" in capsys.readouterr().out


def test_errors_are_reported_not_raised(cli_store: Store, tmp_path: Path, capsys) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "x").write_text("keep")
    assert main(["export", "--format", "coco", "--out", str(occupied)]) == 1
    assert "not an empty folder" in capsys.readouterr().err


def test_python_dash_m_storage_export(cli_store: Store, tmp_path: Path, child_env: dict) -> None:
    env = {
        **child_env,
        "ADASAM_DATA_DIR": str(cli_store.data_dir),
        "DATABASE_URL": str(cli_store.engine.url),
    }
    out = tmp_path / "export"
    result = subprocess.run(
        [sys.executable, "-m", "storage", "export", "--format", "nifti", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "exported 1 masks on 1 slices" in result.stdout
    assert (out / "manifest.json").exists()


def test_bench_prints_rows_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--seconds", "1", "--threads", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("sqlite:") and line.endswith("rows/s")
    assert int(line.split("= ")[1].split()[0]) > 0
