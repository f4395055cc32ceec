"""Where backups go: a Hugging Face Hub dataset repository, or a local folder (tests, NAS).

Both implement :class:`Remote`. Paths are POSIX paths relative to the remote's root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Protocol

from storage.errors import BackupError


class Remote(Protocol):
    """A place that keeps backup files."""

    def describe(self) -> str:
        """Human-readable name of the remote, for messages."""
        ...

    def list_files(self) -> set[str]:
        """Every file path on the remote (empty when the remote does not exist yet)."""
        ...

    def push(self, files: Mapping[str, Path], message: str, delete: Collection[str] = ()) -> None:
        """Upload ``remote path -> local file`` in order, then delete the ``delete`` paths."""
        ...

    def fetch(self, paths: Collection[str], destination: Path) -> None:
        """Download ``paths`` to ``destination / path``."""
        ...


def _safe_relative(path: str) -> Path:
    relative = Path(path)
    if relative.is_absolute() or ".." in relative.parts:
        raise BackupError(f"refusing unsafe remote path {path!r}")
    return relative


class LocalFolderRemote:
    """A folder standing in for the Hub (every file copied atomically, in order)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return f"folder {self.root}"

    def list_files(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and not path.name.startswith(".tmp-")
        }

    def push(self, files: Mapping[str, Path], message: str, delete: Collection[str] = ()) -> None:
        for remote_path, local in files.items():
            target = self.root / _safe_relative(remote_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
            os.close(fd)
            try:
                shutil.copyfile(local, tmp)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        for remote_path in delete:
            (self.root / _safe_relative(remote_path)).unlink(missing_ok=True)

    def fetch(self, paths: Collection[str], destination: Path) -> None:
        for remote_path in paths:
            source = self.root / _safe_relative(remote_path)
            if not source.is_file():
                raise BackupError(f"{remote_path} is missing from {self.describe()}")
            target = Path(destination) / remote_path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


class HubRemote:
    """A Hugging Face Hub repository (private by default when it is created): a dataset for
    backups, ``repo_type="model"`` for published model versions (:mod:`storage.model_hub`).

    Every push is one commit (new blobs, the database snapshot, the manifest, and the removal of
    the previous snapshot together). Any Hub or network
    failure becomes a :class:`BackupError` naming the repository. ``api`` and ``download`` can
    be replaced (tests); by default they are ``huggingface_hub.HfApi`` and
    ``huggingface_hub.snapshot_download``.
    """

    def __init__(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        revision: str | None = None,
        private: bool = True,
        endpoint: str | None = None,
        api: Any = None,
        download: Any = None,
        repo_type: str = "dataset",
    ) -> None:
        if api is None or download is None:
            import huggingface_hub

            api = api or huggingface_hub.HfApi(endpoint=endpoint, token=token)
            download = download or huggingface_hub.snapshot_download
        if repo_type not in ("dataset", "model"):
            raise BackupError(f"repo_type must be dataset or model, got {repo_type!r}")
        self.repo_id = repo_id
        self.repo_type = repo_type
        self.token = token
        self.revision = revision
        self.private = private
        self.endpoint = endpoint
        self.api = api
        self.download = download

    def describe(self) -> str:
        return f"Hugging Face {self.repo_type} {self.repo_id}"

    def _fail(self, action: str, error: Exception) -> BackupError:
        return BackupError(
            f"could not {action} {self.describe()}: {type(error).__name__}: {error}. Check the "
            "network, HF_TOKEN (write access for backups) and the repository id"
        )

    def list_files(self) -> set[str]:
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        try:
            files = self.api.list_repo_files(
                self.repo_id, repo_type=self.repo_type, revision=self.revision, token=self.token
            )
        except (RepositoryNotFoundError, RevisionNotFoundError):
            return set()
        except Exception as error:  # network, auth, offline mode: all mean "no backup now"
            raise self._fail("list", error) from error
        return set(files)

    def push(self, files: Mapping[str, Path], message: str, delete: Collection[str] = ()) -> None:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        operations: list[Any] = [
            CommitOperationAdd(path_in_repo=remote_path, path_or_fileobj=str(local))
            for remote_path, local in files.items()
        ]
        operations += [CommitOperationDelete(path_in_repo=path) for path in delete]
        try:
            self.api.create_repo(
                self.repo_id,
                repo_type=self.repo_type,
                private=self.private,
                exist_ok=True,
                token=self.token,
            )
            self.api.create_commit(
                self.repo_id,
                operations,
                commit_message=message,
                repo_type=self.repo_type,
                revision=self.revision,
                token=self.token,
            )
        except Exception as error:
            raise self._fail("push to", error) from error

    def fetch(self, paths: Collection[str], destination: Path) -> None:
        for path in paths:
            _safe_relative(path)
        try:
            self.download(
                self.repo_id,
                repo_type=self.repo_type,
                revision=self.revision,
                local_dir=str(destination),
                allow_patterns=sorted(paths),
                token=self.token,
                endpoint=self.endpoint,
            )
        except Exception as error:
            raise self._fail("download from", error) from error
        missing = [p for p in paths if not (Path(destination) / p).is_file()]
        if missing:
            raise BackupError(f"{self.describe()} did not provide {missing[:5]}")
