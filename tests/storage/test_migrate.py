"""Alembic migrations: they build exactly the models' schema, on every back-end, once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from storage.engine import make_engine
from storage.migrate import alembic_config, current_revision, head_revision, upgrade_database
from storage.models import Base
from storage.store import Store


def test_database_is_upgraded_on_open(store: Store) -> None:
    assert current_revision(store.engine) == head_revision()


def test_migrations_produce_exactly_the_models(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_upgrade_is_idempotent_and_downgrade_works(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade_database(engine)
        upgrade_database(engine)
        assert current_revision(engine) == head_revision()
        config = alembic_config()
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
            connection.commit()
        assert current_revision(engine) is None
        assert "slices" not in sa.inspect(engine).get_table_names()
        upgrade_database(engine)
        assert "slices" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_processes_starting_together_upgrade_once(tmp_path: Path, child_env: dict) -> None:
    url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    code = (
        "import sys; from pathlib import Path; from storage import open_store; "
        f"open_store({url!r}, Path({str(tmp_path)!r})).close()"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", code], env=child_env, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [child.communicate(timeout=120)[1].decode() for child in children]
    assert [child.returncode for child in children] == [0, 0, 0, 0], errors
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_identifying_source_names_stored_before_0005_become_neutral(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    try:
        config = alembic_config()
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0002")
            connection.execute(
                sa.text(
                    "INSERT INTO slices (content_hash, modality, units, height, width, "
                    "source_format, source_name, metadata, pixels_blob, display_blob, "
                    "created_at) VALUES (:h, 'CT', 'HU', 4, 4, 'dicom', :name, '{}', 'p', 'd', "
                    "'2026-01-01 00:00:00')"
                ),
                {"h": "ab" * 32, "name": "SURNAME_FIRSTNAME_PID12345.dcm"},
            )
            connection.commit()
        upgrade_database(engine)
        with engine.connect() as connection:
            names = connection.execute(sa.text("SELECT source_name FROM slices")).scalars().all()
        assert names == ["case-" + "ab" * 6]
    finally:
        engine.dispose()
