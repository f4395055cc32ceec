"""Tests of the storage package (SQLite and PostgreSQL)."""
