"""Consistent backups of a live SQLite database plus its blobs, and restore on start.

A snapshot is taken with the sqlite3 backup API (a consistent copy while writers keep going),
checked with ``PRAGMA integrity_check``, and pushed with every blob the remote lacks. The
remote layout is ``blobs/ab/cdef...``, ``db/adasam-<sha256 prefix>.sqlite3`` and
``db/manifest.json``, which names the snapshot and is pushed last; older snapshots are deleted
only after it. So a push interrupted half-way leaves the previous manifest and its snapshot
intact (on the Hub a push is a single commit anyway). Never run the live database on a mounted
bucket: keep it on local disk and let :class:`BackupScheduler` push snapshots.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from storage.blobs import BlobStore
from storage.engine import SQLITE_BUSY_TIMEOUT_MS, sqlite_path
from storage.errors import BackupError
from storage.migrate import current_revision
from storage.models import utcnow
from storage.remotes import Remote
from storage.store import Store

log = logging.getLogger(__name__)

DB_PREFIX = "db/adasam-"
MANIFEST_PATH = "db/manifest.json"
BLOB_PREFIX = "blobs/"
_BLOB_PATH = re.compile(r"^blobs/[0-9a-f]{2}/[0-9a-f]{62}$")


@dataclass(frozen=True)
class BackupReport:
    """What one backup pushed."""

    remote: str
    database_bytes: int
    database_sha256: str
    blobs_total: int
    blobs_pushed: int
    created_at: str


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sqlite_file(path: Path) -> None:
    """Raise BackupError unless ``PRAGMA integrity_check`` says ok."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        result = connection.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} is not a readable SQLite database: {error}") from None
    finally:
        connection.close()
    if result != [("ok",)]:
        raise BackupError(f"{path} failed the integrity check: {result[:5]}")


def snapshot_sqlite(source: Path, target: Path) -> None:
    """Copy a live SQLite database consistently (sqlite3 backup API) and check the copy."""
    src = sqlite3.connect(source, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = DELETE")  # a self-contained single file
    finally:
        dst.close()
        src.close()
    check_sqlite_file(target)


def _database_file(store: Store) -> Path:
    path = sqlite_path(store.engine.url.render_as_string(hide_password=False))
    if path is None:
        raise BackupError(
            f"backups push SQLite snapshots; this database is {store.dialect}: back it up with "
            "its own tools (pg_dump for PostgreSQL)"
        )
    return path


def backup(store: Store, remote: Remote) -> BackupReport:
    """Push a consistent snapshot of the database and every blob the remote lacks."""
    database = _database_file(store)
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=store.data_dir) as tmp:
        snapshot = Path(tmp) / "adasam.sqlite3"
        snapshot_sqlite(database, snapshot)
        # Blobs are listed after the snapshot: every blob a snapshot row references was
        # written before that row was committed, so it is in this list.
        blobs = list(store.blobs)
        on_remote = remote.list_files()
        files = {
            f"{BLOB_PREFIX}{digest[:2]}/{digest[2:]}": store.blobs.path_for(digest)
            for digest in blobs
            if f"{BLOB_PREFIX}{digest[:2]}/{digest[2:]}" not in on_remote
        }
        created = utcnow().isoformat()
        database_sha256 = _file_sha256(snapshot)
        database_path = f"{DB_PREFIX}{database_sha256[:16]}.sqlite3"
        database_bytes = snapshot.stat().st_size
        manifest = {
            "created_at": created,
            "database": database_path,
            "database_sha256": database_sha256,
            "database_bytes": database_bytes,
            "schema_revision": current_revision(store.engine),
            "blobs": len(blobs),
        }
        manifest_file = Path(tmp) / "manifest.json"
        manifest_file.write_text(json.dumps(manifest, indent=2) + "\n")
        files[database_path] = snapshot
        files[MANIFEST_PATH] = manifest_file
        old = sorted(p for p in on_remote if p.startswith(DB_PREFIX) and p != database_path)
        remote.push(files, f"ADA-SAM backup {created}: {len(files) - 2} new blobs", delete=old)
        return BackupReport(
            remote=remote.describe(),
            database_bytes=database_bytes,
            database_sha256=database_sha256,
            blobs_total=len(blobs),
            blobs_pushed=len(files) - 2,
            created_at=created,
        )


def restore_if_missing(database_url: str, data_dir: Path, remote: Remote) -> bool:
    """Restore the newest snapshot and its blobs when the local database file is missing.

    Returns whether it restored. An existing database is never touched; a remote without a
    backup is not an error (first start). Everything is downloaded and verified (database
    hash, integrity check, blob hashes) before the database file appears.
    """
    target = sqlite_path(database_url)
    if target is None:
        raise BackupError("restore works on SQLite databases only")
    if target.exists():
        return False
    for suffix in ("-wal", "-shm", "-journal"):
        leftover = Path(f"{target}{suffix}")
        if leftover.exists():
            raise BackupError(
                f"{leftover} exists without its database {target}; a stale journal could corrupt "
                "a restored database. Move it away, then start again"
            )
    files = remote.list_files()
    if MANIFEST_PATH not in files:
        log.info("no backup on %s; starting with an empty database", remote.describe())
        return False
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=target.parent) as tmp:
        staging = Path(tmp)
        remote.fetch([MANIFEST_PATH], staging)
        manifest = json.loads((staging / MANIFEST_PATH).read_text())
        database_path = str(manifest.get("database", ""))
        if not database_path.startswith(DB_PREFIX) or database_path not in files:
            raise BackupError(
                f"the manifest on {remote.describe()} names {database_path!r}, which is not there"
            )
        remote.fetch([database_path], staging)
        snapshot = staging / database_path
        if _file_sha256(snapshot) != manifest.get("database_sha256"):
            raise BackupError(f"the database on {remote.describe()} does not match its manifest")
        check_sqlite_file(snapshot)
        blobs = BlobStore(data_dir / "blobs")
        wanted = sorted(
            path
            for path in files
            if _BLOB_PATH.match(path) and not blobs.has(path[len(BLOB_PREFIX) :].replace("/", ""))
        )
        if wanted:
            remote.fetch(wanted, staging)
        for path in wanted:
            digest = path[len(BLOB_PREFIX) :].replace("/", "")
            stored = blobs.put((staging / path).read_bytes())
            if stored != digest:
                raise BackupError(f"blob {path} on {remote.describe()} is corrupt")
        try:
            os.link(snapshot, target)  # fails instead of overwriting a database made meanwhile
        except FileExistsError:
            return False
        except OSError:
            shutil.copyfile(snapshot, f"{target}.restoring")
            os.replace(f"{target}.restoring", target)
    log.info("restored %s and %d blobs from %s", target, len(wanted), remote.describe())
    return True


class BackupScheduler:
    """Pushes a backup every ``interval`` in a daemon thread; failures are logged, not raised."""

    def __init__(self, store: Store, remote: Remote, interval: timedelta) -> None:
        if interval <= timedelta(0):
            raise ValueError(f"backup interval must be positive, got {interval}")
        self.store = store
        self.remote = remote
        self.interval = interval
        self.last_report: BackupReport | None = None
        self.last_error: str | None = None
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> BackupReport | None:
        """One backup now; the report, or ``None`` when it failed (see ``last_error``)."""
        try:
            report = backup(self.store, self.remote)
        except Exception as error:  # keep the studio running; the next run retries
            self.last_error = f"{type(error).__name__}: {error}"
            log.error("backup to %s failed: %s", self.remote.describe(), self.last_error)
            return None
        finally:
            self.runs += 1
        self.last_report, self.last_error = report, None
        return report

    def _loop(self) -> None:
        while not self._stop.wait(self.interval.total_seconds()):
            self.run_once()

    def start(self) -> None:
        """Start pushing in the background."""
        if self._thread is not None:
            raise RuntimeError("scheduler already started")
        self._thread = threading.Thread(target=self._loop, name="adasam-backup", daemon=True)
        self._thread.start()

    def stop(self, *, final_backup: bool = True) -> None:
        """Stop the thread (after one last backup unless told otherwise)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if final_backup:
            self.run_once()
