"""Content-addressed blob store for slice pixels and model bundles.

A blob lives at ``ROOT/ab/cdef...`` where ``abcdef...`` is the sha256 of its bytes. Writes go to
a temporary file in the same folder, are flushed to disk, then renamed into place, so a crash
leaves either the whole blob or a temporary file that readers ignore. Every read checks the
hash. A directory (a model bundle) is stored as its files' blobs plus a JSON manifest blob.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from storage.errors import BlobCorruptError, InvalidInputError

_HASH = re.compile(r"^[0-9a-f]{64}$")
_TMP_PREFIX = ".tmp-"
_MANIFEST_KIND = "adasam-tree/1"


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def check_hash(value: str, *, what: str = "hash") -> str:
    """Return ``value`` if it is a 64-digit lower-case hex sha256, else refuse it."""
    if not isinstance(value, str) or not _HASH.match(value):
        raise InvalidInputError(f"{what} must be a 64-digit lower-case hex sha256, got {value!r}")
    return value


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Immutable blobs under one root folder, named by the sha256 of their content."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, digest: str) -> Path:
        """Where the blob ``digest`` is (or would be) stored."""
        check_hash(digest)
        return self.root / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        """Whether the blob exists (its content is not checked)."""
        return self.path_for(digest).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its hash."""
        digest = sha256_hex(data)
        target = self.path_for(digest)
        if target.is_file():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        return digest

    def get(self, digest: str) -> bytes:
        """The blob's bytes, after checking they still hash to ``digest``."""
        path = self.path_for(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobCorruptError(f"blob {digest} is missing from {self.root}") from None
        actual = sha256_hex(data)
        if actual != digest:
            raise BlobCorruptError(
                f"blob {digest} is corrupt: its content hashes to {actual} ({path})"
            )
        return data

    def __iter__(self) -> Iterator[str]:
        """Hashes of all stored blobs (temporary files skipped)."""
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or len(folder.name) != 2:
                continue
            for path in sorted(folder.iterdir()):
                name = folder.name + path.name
                if not path.name.startswith(_TMP_PREFIX) and _HASH.match(name):
                    yield name

    def verify_all(self) -> list[str]:
        """Hashes of blobs whose content no longer matches their name."""
        bad = []
        for digest in self:
            if sha256_hex(self.path_for(digest).read_bytes()) != digest:
                bad.append(digest)
        return bad

    def put_tree(self, folder: Path) -> str:
        """Store every file under ``folder`` and a manifest of them; return the manifest hash."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InvalidInputError(f"{folder} is not a directory")
        files: dict[str, str] = {}
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                raise InvalidInputError(f"{path} is a symbolic link; bundles must hold real files")
            if path.is_file():
                files[path.relative_to(folder).as_posix()] = self.put(path.read_bytes())
        if not files:
            raise InvalidInputError(f"{folder} holds no files")
        manifest = json.dumps({"kind": _MANIFEST_KIND, "files": files}, sort_keys=True)
        return self.put(manifest.encode())

    def tree_manifest(self, digest: str) -> dict[str, str]:
        """The ``relative path -> blob hash`` map of a stored tree."""
        try:
            manifest = json.loads(self.get(digest))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BlobCorruptError(f"blob {digest} is not a tree manifest") from None
        if not isinstance(manifest, dict) or manifest.get("kind") != _MANIFEST_KIND:
            raise BlobCorruptError(f"blob {digest} is not a tree manifest")
        return dict(manifest["files"])

    def materialize_tree(self, digest: str, destination: Path) -> Path:
        """Write the tree ``digest`` to ``destination`` (atomically, reused when present)."""
        destination = Path(destination)
        if destination.is_dir():
            return destination
        files = self.tree_manifest(digest)
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=destination.parent))
        for relative, blob in files.items():
            target = staging / relative
            if ".." in Path(relative).parts or Path(relative).is_absolute():
                raise BlobCorruptError(f"tree {digest} names an unsafe path {relative!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.get(blob))
        try:
            os.replace(staging, destination)
        except OSError:
            if not destination.is_dir():
                raise
            # Another process materialised it first; theirs is identical.
            for path in sorted(staging.rglob("*"), reverse=True):
                path.rmdir() if path.is_dir() else path.unlink()
            staging.rmdir()
        return destination
