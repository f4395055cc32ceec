"""Content-addressed blob store: atomic writes, hash-checked reads, bundle trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.blobs import BlobStore, sha256_hex
from storage.errors import BlobCorruptError, InvalidInputError


def test_put_get_round_trip_is_content_addressed(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    digest = blobs.put(b"pixels")
    assert digest == sha256_hex(b"pixels")
    assert blobs.path_for(digest) == tmp_path / "blobs" / digest[:2] / digest[2:]
    assert blobs.get(digest) == b"pixels"
    assert blobs.put(b"pixels") == digest  # idempotent
    assert list(blobs) == [digest]


def test_corrupt_blob_is_detected_on_read(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest = blobs.put(b"original bytes")
    blobs.path_for(digest).write_bytes(b"tampered bytes")
    with pytest.raises(BlobCorruptError, match="corrupt"):
        blobs.get(digest)
    assert blobs.verify_all() == [digest]


def test_missing_blob_and_bad_hash_are_refused(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    with pytest.raises(BlobCorruptError, match="missing"):
        blobs.get("0" * 64)
    with pytest.raises(InvalidInputError, match="sha256"):
        blobs.get("../../etc/passwd")


def test_temporary_files_of_an_interrupted_write_are_ignored(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest = blobs.put(b"kept")
    (blobs.path_for(digest).parent / ".tmp-abandoned").write_bytes(b"half a blob")
    assert list(blobs) == [digest]
    assert blobs.verify_all() == []


def test_tree_round_trip_and_sharing(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "weights").mkdir(parents=True)
    (bundle / "config.json").write_text('{"structures": ["VL", "VM"]}')
    (bundle / "weights" / "sam.safetensors").write_bytes(bytes(range(256)) * 10)
    blobs = BlobStore(tmp_path / "blobs")
    manifest = blobs.put_tree(bundle)
    assert blobs.put_tree(bundle) == manifest
    assert set(blobs.tree_manifest(manifest)) == {"config.json", "weights/sam.safetensors"}
    out = blobs.materialize_tree(manifest, tmp_path / "out" / manifest)
    assert (out / "config.json").read_text() == '{"structures": ["VL", "VM"]}'
    assert (out / "weights" / "sam.safetensors").read_bytes() == bytes(range(256)) * 10
    assert blobs.materialize_tree(manifest, out) == out  # reused


def test_tree_refuses_empty_folder_and_non_manifest(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no files"):
        blobs.put_tree(tmp_path / "empty")
    with pytest.raises(BlobCorruptError, match="not a tree manifest"):
        blobs.tree_manifest(blobs.put(b"just bytes"))
