from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from storage import Store, open_store, register_model_version
from studio.catalog import ACTIVE_VERSION_KEY, ModelCatalog
from studio.errors import StudioError


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = open_store(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "data")
    yield opened
    opened.close()


def _catalog(bundles: dict[str, Path], store: Store | None = None) -> ModelCatalog:
    """A catalog whose poll of the active version never comes due during a test (the poll
    is tested with a clock of its own in test_hot_reload.py)."""
    return ModelCatalog(
        bundles, default_key="custom", device="cpu", cache_size=2, store=store, poll_seconds=1e9
    )


def test_only_bundles_that_exist_are_offered_and_untrained_ones_say_so(
    studio_bundle_dir: Path, tmp_path: Path
) -> None:
    catalog = _catalog({"thigh-mri": tmp_path / "missing", "custom": studio_bundle_dir})
    (choice,) = catalog.choices()
    assert choice.key == "custom" and choice.structures == ("liver", "kidney")
    assert not choice.trained and "UNTRAINED" in choice.label
    assert "untrained" in choice.describe()
    assert catalog.default() == choice
    with pytest.raises(StudioError, match="Choose a model from the list"):
        catalog.choice("thigh-mri")


def test_no_model_at_all_is_explained(tmp_path: Path) -> None:
    catalog = _catalog({"thigh-mri": tmp_path / "missing"})
    assert catalog.choices() == [] and catalog.default() is None
    with pytest.raises(StudioError, match="No model is installed"):
        catalog.choice(None)


def test_one_predictor_is_shared_and_reloaded_when_the_bundle_changes(
    studio_bundle_dir: Path, tmp_path: Path
) -> None:
    bundle = shutil.copytree(studio_bundle_dir, tmp_path / "bundle")
    catalog = _catalog({"custom": bundle})
    first = catalog.predictor(catalog.choice("custom"))
    assert catalog.predictor(catalog.choice("custom")) is first
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["version"] = "1"
    config_path.write_text(json.dumps(config))
    stat = config_path.stat()
    os.utime(config_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    # the click path does no I/O: nothing is re-read until the catalog is bumped or refreshed
    assert catalog.choice("custom").version != "1"
    assert catalog.predictor(catalog.choice("custom")) is first
    generation = catalog.generation
    choice = catalog.refresh()[0]  # page load: notices the bundle saved over on disk
    assert catalog.generation == generation + 1 and choice.version == "1"
    reloaded = catalog.predictor(choice)
    assert reloaded is not first and reloaded.bundle.config.version == "1"
    catalog.bump()  # a bump without a change on disk keeps the loaded predictor
    assert catalog.predictor(catalog.choice("custom")) is reloaded


def test_cached_choices_do_no_io_until_bumped(
    studio_bundle_dir: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _catalog({"custom": studio_bundle_dir}, store)
    assert [c.key for c in catalog.choices()] == ["custom"]
    predictor = catalog.predictor(catalog.choice("custom"))

    def no_io(*_: object, **__: object) -> None:
        raise AssertionError("the click path read a file or the database")

    monkeypatch.setattr("studio.catalog.read_config", no_io)
    monkeypatch.setattr("studio.catalog.active_model_version", no_io)
    monkeypatch.setattr("studio.catalog._config_stamp", no_io)
    for _ in range(3):  # what each click does
        assert catalog.predictor(catalog.choice("custom")) is predictor
    monkeypatch.undo()
    register_model_version(store, name="ft-2", bundle_dir=studio_bundle_dir, activate=True)
    assert [c.key for c in catalog.choices()] == ["custom"], "cached until bumped (or polled)"
    catalog.bump()  # what the learning loop does after activating a version
    assert [c.key for c in catalog.choices()] == [ACTIVE_VERSION_KEY, "custom"]


def test_the_active_fine_tuned_version_is_offered_first(
    studio_bundle_dir: Path, store: Store
) -> None:
    register_model_version(store, name="ft-1", bundle_dir=studio_bundle_dir, activate=True)
    catalog = _catalog({"custom": studio_bundle_dir}, store)
    choices = catalog.choices()
    assert [c.key for c in choices] == [ACTIVE_VERSION_KEY, "custom"]
    active = choices[0]
    assert active.model_version_id is not None
    assert active.label == f"ft-1 (active version {active.model_version_id}, UNTRAINED)"
    assert catalog.default() == active
    assert catalog.predictor(active).structures == ("liver", "kidney")
