"""Model versions published to a model repository (a folder standing in for the Hub, and the
Hub client with a fake API) and pulled into another store: lineage, gate scores, activation,
rollback, idempotence."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import (
    Store,
    active_model_version,
    bundle_path,
    list_model_versions,
    open_store,
    register_model_version,
    rollback,
)
from storage.errors import StorageError
from storage.model_hub import ACTIVE_PATH, model_remote, publish, pull, remote_active
from storage.remotes import HubRemote, LocalFolderRemote
from tests.storage.test_backup import FakeHub


def _store(root: Path) -> Store:
    return open_store(f"sqlite:///{root / 'db.sqlite3'}", root)


def _bundle(root: Path, tag: str) -> Path:
    (root / "training").mkdir(parents=True)
    (root / "config.json").write_text(f'{{"version": "{tag}"}}\n')
    (root / "adapter.safetensors").write_bytes(tag.encode() * 100)
    (root / "training" / "metrics.jsonl").write_text("{}\n")
    return root


@pytest.fixture
def job(tmp_path: Path) -> Store:
    """The job's store: a root, an activated child and an inactive (gate-refused) grandchild."""
    s = _store(tmp_path / "job")
    root = register_model_version(
        s, name="tiny-v0", bundle_dir=_bundle(tmp_path / "b0", "0"), metrics={"root": True},
        activate=True,
    )  # fmt: skip
    child = register_model_version(
        s, name="tiny-v0-ft1", bundle_dir=_bundle(tmp_path / "b1", "ft1"), parent_id=root.id,
        metrics={"gate": {"activate": True, "reason": "not worse"}}, activate=True,
    )  # fmt: skip
    register_model_version(
        s, name="tiny-v0-ft2", bundle_dir=_bundle(tmp_path / "b2", "ft2"), parent_id=child.id,
        metrics={"gate": {"activate": False, "reason": "worse: Dice -0.2"}},
    )  # fmt: skip
    yield s
    s.close()


def test_publish_then_pull_registers_lineage_and_activates(job: Store, tmp_path: Path) -> None:
    remote = LocalFolderRemote(tmp_path / "hub")
    report = publish(job, remote)
    assert report.pushed == ("tiny-v0", "tiny-v0-ft1", "tiny-v0-ft2")
    assert report.active == "tiny-v0-ft1"
    assert remote_active(remote)["name"] == "tiny-v0-ft1"
    studio = _store(tmp_path / "studio")
    pulled = pull(studio, remote)
    assert pulled.registered == report.pushed and pulled.activated == "tiny-v0-ft1"
    here = {v.name: v for v in list_model_versions(studio)}
    there = {v.name: v for v in list_model_versions(job)}
    assert here["tiny-v0-ft1"].parent_id == here["tiny-v0"].id
    assert here["tiny-v0-ft2"].parent_id == here["tiny-v0-ft1"].id
    assert not here["tiny-v0-ft2"].is_active
    assert here["tiny-v0-ft2"].metrics["gate"]["reason"] == "worse: Dice -0.2"
    assert here["tiny-v0-ft1"].metrics["pulled_from"] == remote.describe()
    for name in here:  # the same bundle, file for file (content-addressed)
        assert here[name].bundle_ref == there[name].bundle_ref
    served = bundle_path(studio, here["tiny-v0-ft1"].id)
    assert (served / "adapter.safetensors").read_bytes() == b"ft1" * 100
    assert active_model_version(studio).name == "tiny-v0-ft1"
    # nothing new: nothing pushed but the marker, nothing pulled
    assert publish(job, remote).pushed == ()
    again = pull(studio, remote)
    assert again.registered == () and again.activated is None
    studio.close()


def test_a_rollback_on_the_job_side_reaches_the_studio(job: Store, tmp_path: Path) -> None:
    remote = LocalFolderRemote(tmp_path / "hub")
    publish(job, remote)
    studio = _store(tmp_path / "studio")
    pull(studio, remote)
    rollback(job)
    publish(job, remote)
    assert pull(studio, remote).activated == "tiny-v0"
    assert active_model_version(studio).name == "tiny-v0"
    studio.close()


def test_pull_refuses_a_marker_naming_a_missing_version(job: Store, tmp_path: Path) -> None:
    remote = LocalFolderRemote(tmp_path / "hub")
    publish(job, remote)
    (tmp_path / "hub" / ACTIVE_PATH).write_text('{"name": "ghost"}\n')
    studio = _store(tmp_path / "studio")
    with pytest.raises(StorageError, match="ghost"):
        pull(studio, remote)
    studio.close()


def test_an_unknown_correction_id_is_kept_in_the_metrics(tmp_path: Path) -> None:
    job = _store(tmp_path / "job")
    register_model_version(
        job, name="v", bundle_dir=_bundle(tmp_path / "b", "0"), activate=True,
        metrics={"root": True},
    )  # fmt: skip
    remote = LocalFolderRemote(tmp_path / "hub")
    publish(job, remote)
    meta = tmp_path / "hub" / "versions" / "v" / "version.json"
    meta.write_text(
        meta.read_text().replace(
            '"trained_through_correction_id": null', '"trained_through_correction_id": 77'
        )
    )
    studio = _store(tmp_path / "studio")
    pull(studio, remote)
    [v] = list_model_versions(studio)
    assert v.trained_through_correction_id is None
    assert v.metrics["remote_trained_through_correction_id"] == 77
    studio.close()
    job.close()


def test_the_hub_client_publishes_to_a_model_repository(job: Store, tmp_path: Path) -> None:
    hub = FakeHub()
    remote = HubRemote(
        "lab/adasam-models", token="hf_x", api=hub, download=hub.snapshot_download,
        repo_type="model",
    )  # fmt: skip
    publish(job, remote)
    calls = dict(hub.calls)
    assert calls["create_repo"]["repo_type"] == "model"
    assert calls["create_commit"]["repo_type"] == "model"
    assert [n for n, _ in hub.calls].count("create_commit") == 1  # one commit for all
    assert ACTIVE_PATH in hub.files
    studio = _store(tmp_path / "studio")
    assert pull(studio, remote).activated == "tiny-v0-ft1"
    assert all(c["repo_type"] == "model" for n, c in hub.calls if n == "snapshot_download")
    studio.close()


def test_model_remote_reads_the_target() -> None:
    assert isinstance(model_remote("/srv/models"), LocalFolderRemote)
    assert isinstance(model_remote("file:relative/models"), LocalFolderRemote)
    hub = model_remote("lab/models")
    assert isinstance(hub, HubRemote) and hub.describe() == "Hugging Face model lab/models"
    for bad in ("", "no-slash", "a/b/c"):
        with pytest.raises(StorageError):
            model_remote(bad)
