"""Alembic migrations of the storage schema (run by :func:`storage.migrate.upgrade_database`)."""
