"""Set-up (a): ``finetune --watch`` as its own process beside the studio (same SQLite
database): corrections written through storage are picked up, a version is registered and
published, and SIGTERM stops the watcher cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import list_jobs, list_model_versions, open_store
from storage.model_hub import pull
from storage.remotes import LocalFolderRemote
from tests.learning.conftest import add_correction, phantom_image
from tests.learning.test_job import REPO, _env


def _wait(condition, what: str, proc: subprocess.Popen, log: Path, seconds: float = 240):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, f"the watcher exited: {log.read_text()}"
        assert time.monotonic() < deadline, f"{what} never happened: {log.read_text()}"
        time.sleep(0.3)


def _published_ft(text: str) -> bool:
    return any(ln.startswith("published to") and "-ft" in ln for ln in text.splitlines())


@pytest.mark.slow
def test_watch_beside_the_studio_trains_publishes_and_stops_on_sigterm(tmp_path, loop_bundle_dir):
    data, hub, log = tmp_path / "data", tmp_path / "hub", tmp_path / "watch.log"
    store = open_store(f"sqlite:///{data / 'db.sqlite3'}", data)  # the studio's side
    flags = ["--every-corrections", "2", "--poll-seconds", "0.3", "--steps", "2"]
    flags += ["--batch-size", "2", "--replay-ratio", "0", "--threads", "1", "--clicks", "2"]
    flags += ["--heldout-share", "0.5", "--min-heldout", "2", "--push-to", str(hub)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "adasam", "finetune", "--watch", "--quiet", *flags],
            env=_env(data, loop_bundle_dir), cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait(lambda: "watching" in log.read_text(), "start", proc, log)
        for k in range(13):  # submitted while it watches; slices 2 and 12 are held out
            image, mask = phantom_image(k)
            add_correction(store, image, mask, verdict="major_edits")
        _wait(lambda: len(list_model_versions(store)) >= 2, "a registered version", proc, log)
        # the watch also publishes at its start ("no new version"): wait for the push that
        # carries the fine-tuned version, or SIGTERM can land before it
        _wait(lambda: _published_ft(log.read_text()), "a publish of the new version", proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    text = log.read_text()
    assert rc == 0 and text.rstrip().endswith("stopped"), text
    root, cand = list_model_versions(store)[:2]
    assert cand.parent_id == root.id and cand.metrics["lineage"]["correction_ids"]
    assert all(j.status != "running" for j in list_jobs(store))  # no lock left behind
    studio = open_store(f"sqlite:///{tmp_path / 'studio' / 'db.sqlite3'}", tmp_path / "studio")
    report = pull(studio, LocalFolderRemote(hub))
    assert set(report.registered) >= {root.name, cand.name}
    active = next(v for v in list_model_versions(store) if v.is_active)
    assert next(v for v in list_model_versions(studio) if v.is_active).name == active.name
    studio.close()
    store.close()


def test_models_rollback_publishes_for_the_pulling_studios(tmp_path, monkeypatch, capsys):
    from adasam.cli import main
    from storage import active_model_version, register_model_version
    from storage.model_hub import remote_active

    data = tmp_path / "data"
    store = open_store(f"sqlite:///{data / 'db.sqlite3'}", data)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text("{}\n")
    root = register_model_version(store, name="r", bundle_dir=bundle, activate=True)
    register_model_version(store, name="r-ft1", bundle_dir=bundle, parent_id=root.id, activate=True)
    monkeypatch.setenv("ADASAM_DATA_DIR", str(data))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{data / 'db.sqlite3'}")
    monkeypatch.setenv("ADASAM_MODEL_REPO", str(tmp_path / "hub"))
    assert main(["models", "rollback"]) == 0
    assert "published to folder" in capsys.readouterr().out
    assert remote_active(LocalFolderRemote(tmp_path / "hub"))["name"] == "r"
    assert main(["models", "activate", "2", "--push-to", "none"]) == 0
    assert remote_active(LocalFolderRemote(tmp_path / "hub"))["name"] == "r"  # not pushed
    assert active_model_version(store).name == "r-ft1"
    assert main(["models", "list", "--push-to", "not a repo"]) == 0  # list never publishes
    store.close()
