"""Backups: consistent SQLite snapshots plus blobs, restore on start, the Hub code path."""

from __future__ import annotations

import json
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import storage
from storage.backup import (
    DB_PREFIX,
    MANIFEST_PATH,
    BackupScheduler,
    backup,
    check_sqlite_file,
    restore_if_missing,
)
from storage.bench import prepare_workload, write_loop
from storage.check import check_store
from storage.errors import BackupError
from storage.remotes import HubRemote, LocalFolderRemote
from storage.store import Store


@pytest.fixture
def filled(sqlite_store: Store, sqlite_samples, tmp_path: Path) -> Store:
    s = sqlite_samples.slice()
    p = sqlite_samples.prediction(s)
    c = sqlite_samples.correction(p)
    storage.record_rating(
        sqlite_store,
        observer=storage.HumanObserver("ann"),
        score=4,
        verdict="minor_edits",
        correction_id=c.id,
    )
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "weights.bin").write_bytes(b"\x07" * 4096)
    storage.register_model_version(sqlite_store, name="v1", bundle_dir=bundle, activate=True)
    return sqlite_store


def _database_path(remote) -> str:
    manifest = json.loads((remote.root / MANIFEST_PATH).read_text())
    return str(manifest["database"])


def _restore_into(remote, tmp_path: Path, name: str) -> tuple[str, Path]:
    data_dir = tmp_path / name
    url = f"sqlite:///{data_dir / 'adasam.sqlite3'}"
    assert restore_if_missing(url, data_dir, remote)
    return url, data_dir


def test_backup_and_restore_round_trip(filled: Store, tmp_path: Path) -> None:
    remote = LocalFolderRemote(tmp_path / "remote")
    report = backup(filled, remote)
    assert report.blobs_pushed == report.blobs_total > 0
    files = remote.list_files()
    assert MANIFEST_PATH in files and _database_path(remote) in files
    assert sum(f.startswith("blobs/") for f in files) == report.blobs_total
    assert backup(filled, remote).blobs_pushed == 0  # incremental
    storage.ensure_annotator(filled, "late")  # the database changes: one snapshot is kept
    backup(filled, remote)
    assert [f for f in remote.list_files() if f.startswith(DB_PREFIX)] == [_database_path(remote)]

    url, data_dir = _restore_into(remote, tmp_path, "restored")
    with storage.open_store(url, data_dir) as restored:
        assert storage.stats(restored) == storage.stats(filled)
        assert check_store(restored) == []
        (final,) = storage.final_masks(restored)
        (original,) = storage.final_masks(filled)
        np.testing.assert_array_equal(final.mask, original.mask)
        np.testing.assert_array_equal(
            storage.load_pixels(restored, final.slice), storage.load_pixels(filled, original.slice)
        )
        version = storage.active_model_version(restored)
        assert (storage.bundle_path(restored, version.id) / "weights.bin").read_bytes() == (
            b"\x07" * 4096
        )


def test_snapshot_of_a_database_being_written_is_consistent(
    sqlite_store: Store, tmp_path: Path
) -> None:
    ids = prepare_workload(sqlite_store)
    until = time.monotonic() + 3
    writer = threading.Thread(
        target=write_loop, args=(sqlite_store, ids), kwargs={"until": until, "seed": 1, "tag": "w"}
    )
    writer.start()
    remotes = []
    while writer.is_alive():
        remote = LocalFolderRemote(tmp_path / f"remote{len(remotes)}")
        backup(sqlite_store, remote)
        remotes.append(remote)
        time.sleep(0.5)
    writer.join()
    assert len(remotes) >= 2
    for index, remote in enumerate(remotes):
        check_sqlite_file(remote.root / _database_path(remote))
        url, data_dir = _restore_into(remote, tmp_path, f"r{index}")
        with storage.open_store(url, data_dir) as restored:
            assert check_store(restored) == []
            counts = storage.stats(restored)
            # each pair is two transactions: a snapshot may fall between them, never inside one
            assert counts.corrections - counts.ratings in (0, 1)
            with restored.engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []


def test_open_store_restores_a_missing_database_on_start(filled: Store, tmp_path: Path) -> None:
    remote = LocalFolderRemote(tmp_path / "remote")
    backup(filled, remote)
    data_dir = tmp_path / "space-restart"
    url = f"sqlite:///{data_dir / 'adasam.sqlite3'}"
    with storage.open_store(url, data_dir, restore_from=remote) as restarted:
        assert storage.stats(restarted).corrections == 1
    with storage.open_store(url, data_dir, restore_from=LocalFolderRemote(tmp_path / "x")) as again:
        assert storage.stats(again).corrections == 1  # present: nothing restored, nothing lost


def test_restore_never_overwrites_and_tolerates_an_empty_remote(
    filled: Store, tmp_path: Path
) -> None:
    empty = LocalFolderRemote(tmp_path / "nothing-here")
    fresh = tmp_path / "fresh"
    assert not restore_if_missing(f"sqlite:///{fresh / 'db.sqlite3'}", fresh, empty)
    remote = LocalFolderRemote(tmp_path / "remote")
    backup(filled, remote)
    live = str(filled.engine.url.database)
    before = Path(live).read_bytes()
    assert not restore_if_missing(f"sqlite:///{live}", filled.data_dir, remote)
    assert Path(live).read_bytes() == before


def test_restore_refuses_a_stale_journal(filled: Store, tmp_path: Path) -> None:
    remote = LocalFolderRemote(tmp_path / "remote")
    backup(filled, remote)
    target = tmp_path / "x" / "adasam.sqlite3"
    target.parent.mkdir()
    Path(f"{target}-wal").write_bytes(b"old wal")
    with pytest.raises(BackupError, match="stale journal"):
        restore_if_missing(f"sqlite:///{target}", tmp_path / "x", remote)
    assert not target.exists()


def test_corrupt_backups_are_refused_before_anything_appears(filled: Store, tmp_path: Path) -> None:
    remote = LocalFolderRemote(tmp_path / "remote")
    backup(filled, remote)
    broken_db = LocalFolderRemote(tmp_path / "broken-db")
    shutil.copytree(remote.root, broken_db.root)
    with (broken_db.root / _database_path(broken_db)).open("r+b") as handle:
        handle.seek(200)
        handle.write(b"garbage")
    target = tmp_path / "a" / "adasam.sqlite3"
    with pytest.raises(BackupError, match="does not match its manifest"):
        restore_if_missing(f"sqlite:///{target}", tmp_path / "a", broken_db)
    assert not target.exists()

    broken_blob = LocalFolderRemote(tmp_path / "broken-blob")
    shutil.copytree(remote.root, broken_blob.root)
    blob = sorted(p for p in broken_blob.list_files() if p.startswith("blobs/"))[0]
    (broken_blob.root / blob).write_bytes(b"not what the hash says")
    target = tmp_path / "b" / "adasam.sqlite3"
    with pytest.raises(BackupError, match="corrupt"):
        restore_if_missing(f"sqlite:///{target}", tmp_path / "b", broken_blob)
    assert not target.exists()


@pytest.mark.postgres
def test_postgresql_backups_are_refused_with_a_pointer(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    with (
        storage.open_store(postgres_schema_url, tmp_path) as store,
        pytest.raises(BackupError, match="pg_dump"),
    ):
        backup(store, LocalFolderRemote(tmp_path / "remote"))


def test_scheduler_pushes_periodically_and_survives_failures(filled: Store, tmp_path: Path) -> None:
    remote = LocalFolderRemote(tmp_path / "remote")
    scheduler = BackupScheduler(filled, remote, timedelta(seconds=0.1))
    scheduler.start()
    deadline = time.monotonic() + 20
    while scheduler.runs < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    scheduler.stop()
    assert scheduler.runs >= 3 and scheduler.last_error is None
    assert _database_path(remote) in remote.list_files()

    class Unreachable(LocalFolderRemote):
        def list_files(self) -> set[str]:
            raise BackupError("remote unreachable")

    failing = BackupScheduler(filled, Unreachable(tmp_path / "u"), timedelta(hours=1))
    assert failing.run_once() is None
    assert failing.last_error == "BackupError: remote unreachable"


# ------------------------------------------------------------------ Hugging Face Hub path


class FakeHub:
    """Stands in for ``HfApi`` + ``snapshot_download``: records calls, keeps files in memory."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.exists = False

    def list_repo_files(self, repo_id: str, **kwargs: Any) -> list[str]:
        import httpx
        from huggingface_hub.errors import RepositoryNotFoundError

        self.calls.append(("list_repo_files", {"repo_id": repo_id, **kwargs}))
        if not self.exists:
            url = f"https://huggingface.co/api/datasets/{repo_id}"
            response = httpx.Response(404, request=httpx.Request("GET", url))
            raise RepositoryNotFoundError("404 Repository Not Found", response=response)
        return list(self.files)

    def create_repo(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        self.exists = True

    def create_commit(self, repo_id: str, operations: list, **kwargs: Any) -> None:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        self.calls.append(("create_commit", {"repo_id": repo_id, **kwargs}))
        for operation in operations:
            if isinstance(operation, CommitOperationDelete):
                del self.files[operation.path_in_repo]
            else:
                assert isinstance(operation, CommitOperationAdd)
                self.files[operation.path_in_repo] = Path(operation.path_or_fileobj).read_bytes()

    def snapshot_download(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append(("snapshot_download", {"repo_id": repo_id, **kwargs}))
        for path in kwargs["allow_patterns"]:
            target = Path(kwargs["local_dir"]) / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.files[path])
        return kwargs["local_dir"]


def test_hub_remote_backup_and_restore_calls(filled: Store, tmp_path: Path) -> None:
    hub = FakeHub()
    remote = HubRemote(
        "lab/adasam-backup", token="hf_test", api=hub, download=hub.snapshot_download
    )
    assert remote.list_files() == set()  # repository not created yet: nothing to restore
    hub.calls.clear()
    report = backup(filled, remote)
    names = [name for name, _ in hub.calls]
    assert names == ["list_repo_files", "create_repo", "create_commit"]
    create_repo, create_commit = hub.calls[1][1], hub.calls[2][1]
    assert create_repo == {
        "repo_id": "lab/adasam-backup",
        "repo_type": "dataset",
        "private": True,
        "exist_ok": True,
        "token": "hf_test",
    }
    assert create_commit["repo_type"] == "dataset" and create_commit["token"] == "hf_test"
    assert create_commit["commit_message"].startswith("ADA-SAM backup")
    assert len(hub.files) == report.blobs_total + 2  # one commit: snapshot, manifest, blobs
    storage.ensure_annotator(filled, "late")
    backup(filled, remote)  # the next commit replaces the snapshot
    assert len([p for p in hub.files if p.startswith(DB_PREFIX)]) == 1

    url, data_dir = _restore_into(remote, tmp_path, "from-hub")
    download = [call for name, call in hub.calls if name == "snapshot_download"]
    database = next(p for p in hub.files if p.startswith(DB_PREFIX))
    assert [call["allow_patterns"] for call in download[:2]] == [[MANIFEST_PATH], [database]]
    assert download[0]["repo_type"] == "dataset"
    with storage.open_store(url, data_dir) as restored:
        assert storage.stats(restored) == storage.stats(filled)


def test_hub_failures_become_clear_errors(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The real huggingface_hub client, with the Hub unreachable (offline mode)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    remote = HubRemote("lab/adasam-backup", token="hf_test")
    with pytest.raises(BackupError, match=r"could not list Hugging Face dataset lab/adasam-b"):
        remote.list_files()
    with pytest.raises(BackupError, match="could not download from Hugging Face dataset"):
        remote.fetch([MANIFEST_PATH], tmp_path)
    with pytest.raises(BackupError, match="unsafe remote path"):
        remote.fetch(["../escape"], tmp_path)
