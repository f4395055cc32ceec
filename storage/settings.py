"""Where ``python -m storage`` finds the database and the blobs (its only read of the
environment; the library functions take plain values).

``ADASAM_DATA_DIR`` (default ``./data`` of the repository) and ``DATABASE_URL`` (default: the
SQLite file ``adasam.sqlite3`` in the data directory): the same variables and defaults as
:class:`adasam.settings.Settings` (a test holds the two equal), read here so that storage
never imports the ML core.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class StorageLocation:
    """``data_dir``: blobs and the default SQLite file; ``database_url``: any SQLAlchemy URL."""

    data_dir: Path
    database_url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StorageLocation:
        env = dict(os.environ) if env is None else env
        data_dir = Path(env.get("ADASAM_DATA_DIR") or REPO_ROOT / "data").expanduser()
        url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'adasam.sqlite3'}"
        return cls(data_dir=data_dir, database_url=url)
