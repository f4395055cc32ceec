"""Hot reload: a newly activated version answers the next prediction without a restart, a
click session finishes on the version it started with, and clicks cost no database query."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from adasam.bundle import load_bundle, save_bundle, with_version
from storage import activate_model_version, register_model_version
from studio.catalog import ACTIVE_VERSION_KEY
from studio.config import StudioSettings
from studio.screens import PIPELINE_SLOTS
from studio.services import Services, build_services
from studio.state import CaseState
from tests.studio.conftest import CT_SMALL, make_settings
from tests.studio.test_handlers import Studio


@contextmanager
def count_queries() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


@pytest.fixture
def versioned(tmp_path: Path, studio_bundle_dir: Path) -> Iterator[tuple[Services, int, int]]:
    services = build_services(
        make_settings(tmp_path / "data", studio_bundle_dir),
        StudioSettings(identity="name", seed_worklist=False, auxol=False, refine_guard=False),
    )
    ids = []
    for version in ("A", "B"):
        folder = save_bundle(
            with_version(load_bundle(studio_bundle_dir), version), tmp_path / f"bundle-{version}"
        )
        ids.append(
            register_model_version(
                services.store, name=f"tiny-{version}", bundle_dir=folder, activate=version == "A"
            ).id
        )
    yield services, ids[0], ids[1]
    services.close()


def _run(studio: Studio) -> tuple[CaseState, str]:
    loaded = studio.cases.load_upload(str(CT_SMALL), 2, ACTIVE_VERSION_KEY)["state"]
    screen = studio.segment.run(loaded, ACTIVE_VERSION_KEY, ["liver"])
    assert set(screen) == set(PIPELINE_SLOTS)
    return screen["state"], screen["timings_md"]


def test_the_next_prediction_comes_from_the_newly_activated_version(versioned) -> None:
    services, a, b = versioned
    studio = Studio(services)
    first, timings = _run(studio)
    assert first.model_version_id == a and first.model_version == "A"
    assert "Answered by **tiny vA**" in timings
    generation = services.catalog.generation
    activate_model_version(services.store, b)
    services.catalog.bump()  # what an activation in this process does; others wait one poll
    second, timings = _run(studio)
    assert second.model_version_id == b and "Answered by **tiny vB**" in timings
    assert services.catalog.generation == generation + 1
    # the session that started on A finishes on A: its clicks go to A's predictor
    assert studio.segment._predictor(first).bundle.config.version == "A"
    assert studio.segment._predictor(second).bundle.config.version == "B"
    refined, _ = studio.segment.refine_state(first, 60, 60, "add")
    assert refined.model_version == "A" and refined.work.refined


def test_another_process_activating_is_seen_within_one_poll(versioned, monkeypatch) -> None:
    services, a, b = versioned
    studio = Studio(services)
    clock = [1000.0]
    monkeypatch.setattr("studio.catalog.time.monotonic", lambda: clock[0])
    services.catalog.bump()
    assert _run(studio)[0].model_version_id == a
    activate_model_version(services.store, b)  # e.g. `finetune --watch` in another process
    clock[0] += 1.0
    assert _run(studio)[0].model_version_id == a  # cached: no query within the poll window
    clock[0] += 3.0
    assert _run(studio)[0].model_version_id == b


def test_clicks_cost_no_database_query(versioned) -> None:
    services, _, _ = versioned
    studio = Studio(services)
    state, _ = _run(studio)
    state, _ = studio.segment.refine_state(state, 50, 50, "add")  # warm
    with count_queries() as queries:
        for x in (40, 55, 70):
            state, _ = studio.segment.refine_state(state, x, 60, "add")
    assert queries == []
