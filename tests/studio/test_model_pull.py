"""Set-up (b): a job elsewhere publishes versions to a model repository (a folder standing in
for the Hub); the studio pulls the newly activated one and its next prediction uses it, with no
restart; an activation made in the studio stands until the repository changes again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adasam.bundle import load_bundle, save_bundle, with_version
from storage import (
    Store,
    activate_model_version,
    active_model_version,
    list_model_versions,
    open_store,
    register_model_version,
    rollback,
)
from storage.model_hub import publish
from studio.config import StudioSettings
from studio.services import Services, build_services
from tests.studio.conftest import make_settings
from tests.studio.test_handlers import Studio
from tests.studio.test_hot_reload import _run


@pytest.fixture
def job_store(tmp_path: Path, studio_bundle_dir: Path) -> Iterator[Store]:
    """The job's own database (another machine): root A, fine-tuned B activated by the gate."""
    s = open_store(f"sqlite:///{tmp_path / 'job' / 'db.sqlite3'}", tmp_path / "job")
    parent = None
    for version in ("A", "B"):
        folder = save_bundle(
            with_version(load_bundle(studio_bundle_dir), version), tmp_path / f"bundle-{version}"
        )
        parent = register_model_version(
            s, name=f"tiny-{version}", bundle_dir=folder, activate=True,
            parent_id=None if parent is None else parent.id,
            metrics={"gate": {"activate": True, "reason": "not worse"}},
        )  # fmt: skip
    yield s
    s.close()


@pytest.fixture
def pulling(tmp_path: Path, studio_bundle_dir: Path) -> Iterator[Services]:
    hub = tmp_path / "hub"
    services = build_services(
        make_settings(tmp_path / "data", studio_bundle_dir, model_repo=str(hub)),
        StudioSettings(
            identity="name",
            seed_worklist=False,
            auxol=False,
            refine_guard=False,
            model_pull_seconds=3600,
        ),
    )
    yield services
    services.close()


def test_the_studio_serves_a_version_the_job_published(job_store, pulling, tmp_path) -> None:
    studio = Studio(pulling)
    puller = pulling.puller
    assert puller is not None and "folder" in puller.describe()
    assert puller.first_poll.wait(30)  # the thread looked once at start (nothing there)
    assert pulling.catalog.default().key == "custom"  # nothing published yet: the bundle
    publish(job_store, pulling.puller.remote)
    report = puller.poll_once()
    assert report is not None and report.registered == ("tiny-A", "tiny-B")
    assert report.activated == "tiny-B"
    state, timings = _run(studio)  # the next prediction: no restart
    assert state.model_version == "B" and "Answered by **tiny vB**" in timings
    here = {v.name: v for v in list_model_versions(pulling.store)}
    assert here["tiny-B"].parent_id == here["tiny-A"].id
    assert here["tiny-B"].metrics["gate"]["reason"] == "not worse"
    assert puller.poll_once() is None  # the marker did not change

    activate_model_version(pulling.store, here["tiny-A"].id)  # an admin here rolls back
    pulling.catalog.bump()
    assert puller.poll_once() is None and _run(studio)[0].model_version == "A"  # it stands

    rollback(job_store)  # the job side rolls back too, then re-activates B: a new marker
    activate_model_version(job_store, list_model_versions(job_store)[1].id)
    publish(job_store, puller.remote)
    assert puller.poll_once().activated == "tiny-B"
    assert _run(studio)[0].model_version == "B"
    assert active_model_version(pulling.store).name == "tiny-B"


def test_a_broken_repository_is_reported_not_raised(pulling, tmp_path) -> None:
    assert pulling.puller.first_poll.wait(30)
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "active.json").write_text('{"name": "tiny-Z"}\n')
    assert pulling.puller.poll_once() is None
    assert "tiny-Z" in (pulling.puller.error or "")
    assert "last error" in pulling.puller.describe()
    assert pulling.catalog.default().key == "custom"  # still serving what it has
