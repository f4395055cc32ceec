"""Alembic environment: runs migrations on the connection handed over by storage.migrate.

There is no alembic.ini: :func:`storage.migrate.upgrade_database` builds the configuration and
passes an open connection in ``config.attributes["connection"]``. Concurrent starters are
serialised: SQLite write transactions begin IMMEDIATE (see storage.engine), and on PostgreSQL
the migration transaction takes an advisory lock first.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from storage.models import Base

MIGRATION_LOCK_KEY = 0x4144_4153_414D  # "ADASAM": advisory lock id on PostgreSQL

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through storage.migrate.upgrade_database(engine)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    context.run_migrations()
