"""Model versions (register, activate, roll back) and training examples since a version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import storage
from storage.errors import InvalidInputError, NotFoundError, StorageError
from storage.store import Store


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "config.json").write_text('{"structures": ["VL"]}')
    (folder / "lora.safetensors").write_bytes(b"\x01" * 1000)
    return folder


def test_register_activate_rollback(store: Store, bundle: Path) -> None:
    assert storage.active_model_version(store) is None
    base = storage.register_model_version(store, name="base", bundle_dir=bundle, activate=True)
    (bundle / "lora.safetensors").write_bytes(b"\x02" * 1000)
    tuned = storage.register_model_version(
        store, name="ft-1", bundle_dir=bundle, parent_id=base.id, metrics={"dice": 0.91}
    )
    assert tuned.bundle_ref != base.bundle_ref
    assert storage.active_model_version(store).name == "base"
    storage.activate_model_version(store, tuned.id)
    active = storage.active_model_version(store)
    assert (active.name, active.metrics, active.activated_at is not None) == (
        "ft-1",
        {"dice": 0.91},
        True,
    )
    assert [v.is_active for v in storage.list_model_versions(store)] == [False, True]
    assert storage.rollback(store).name == "base"
    assert storage.active_model_version(store).name == "base"
    with pytest.raises(StorageError, match="no parent"):
        storage.rollback(store)
    assert storage.stats(store).active_model_version == "base"


def test_bundles_are_materialised_from_the_blob_store(store: Store, bundle: Path) -> None:
    version = storage.register_model_version(store, name="v", bundle_dir=bundle)
    (bundle / "lora.safetensors").write_bytes(b"changed later")  # the stored copy is immutable
    path = storage.bundle_path(store, version.id)
    assert (path / "lora.safetensors").read_bytes() == b"\x01" * 1000
    assert (path / "config.json").exists()


def test_model_version_refusals(store: Store, bundle: Path) -> None:
    storage.register_model_version(store, name="v", bundle_dir=bundle)
    with pytest.raises(InvalidInputError, match="already exists"):
        storage.register_model_version(store, name="v", bundle_dir=bundle)
    with pytest.raises(NotFoundError, match="parent"):
        storage.register_model_version(store, name="w", bundle_dir=bundle, parent_id=99)
    with pytest.raises(NotFoundError):
        storage.activate_model_version(store, 99)
    with pytest.raises(StorageError, match="no model version is active"):
        storage.rollback(store)
    assert len(storage.list_model_versions(store)) == 1


def test_training_examples_since_a_version(store: Store, samples, bundle: Path) -> None:
    s1, s2 = samples.slice(), samples.slice()
    p1 = samples.prediction(s1)
    first = samples.correction(p1, annotator="a")
    samples.correction(samples.prediction(s2), annotator="a")
    everything = storage.training_examples_since(store, None)
    assert len(everything) == 2
    example = everything[0]
    assert example.slice_hash == s1.content_hash
    np.testing.assert_array_equal(example.pixels, storage.load_pixels(store, s1))
    np.testing.assert_array_equal(
        example.mask, storage.load_correction_masks(store, first.id).final
    )
    assert (example.structure, example.spacing, example.modality) == ("VL", (0.8, 0.7), "MR")

    trained_through = max(e.correction_id for e in everything)
    version = storage.register_model_version(
        store, name="ft", bundle_dir=bundle, trained_through_correction_id=trained_through
    )
    assert storage.training_examples_since(store, version.id) == []
    # a re-correction of s1 after training: only the newest final mask comes back
    newer_final = np.zeros(s1.shape, bool)
    newer_final[5:20, 5:20] = True
    newer = samples.correction(p1, annotator="b", final=newer_final)
    fresh = storage.training_examples_since(store, version.id)
    assert [e.correction_id for e in fresh] == [newer.id]
    np.testing.assert_array_equal(fresh[0].mask, newer_final)
    with pytest.raises(NotFoundError):
        storage.training_examples_since(store, 12345)


def test_final_masks_never_return_originals(store: Store, samples) -> None:
    s = samples.slice()
    p = samples.prediction(s)
    final = np.zeros(s.shape, bool)
    final[1:4, 1:4] = True
    samples.correction(p, final=final)
    (only,) = storage.final_masks(store)
    np.testing.assert_array_equal(only.mask, final)
    assert storage.final_masks(store, structures=["VM"]) == []
