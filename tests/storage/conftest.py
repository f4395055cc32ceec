"""Fixtures of the storage suite: SQLite and PostgreSQL back-ends, stores, sample data.

PostgreSQL: ``ADASAM_TEST_POSTGRES_URL`` (set by ``.ci/postgres.sh``) names a server; without
it the suite starts a throwaway cluster itself when the server binaries are installed. Only
when neither works are the PostgreSQL tests skipped, with the reason; under CI (``CI=true``)
they fail instead. Every test gets its own schema (PostgreSQL) or file (SQLite).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

import storage
from storage.store import Store

REPO_ROOT = Path(__file__).resolve().parents[2]
THROUGHPUT: list[str] = []
"""Lines printed in the terminal summary (write throughput measured by the tests)."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if THROUGHPUT:
        terminalreporter.section("storage write throughput")
        for line in THROUGHPUT:
            terminalreporter.write_line(line)


# ---------------------------------------------------------------- PostgreSQL server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


@dataclass
class _LocalPostgres:
    """A cluster this test session started (and stops)."""

    directory: Path
    bin_dir: Path
    url: str = ""
    prefix: list[str] = field(default_factory=list)

    def start(self) -> None:
        if os.geteuid() == 0:
            self.prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.directory, "postgres")
        data = self.directory / "data"
        port = _free_port()
        run = dict(check=True, capture_output=True, text=True, timeout=120)
        subprocess.run(
            [
                *self.prefix,
                str(self.bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "adasam",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            **run,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {self.directory}"
        subprocess.run(
            [
                *self.prefix,
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-w",
                "-t",
                "60",
                "-l",
                str(self.directory / "server.log"),
                "-o",
                options,
                "start",
            ],
            **run,
        )
        self.url = f"postgresql+psycopg://adasam@127.0.0.1:{port}/postgres"

    def stop(self) -> None:
        subprocess.run(
            [
                *self.prefix,
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL database on which the suite may create schemas."""
    url = os.environ.get("ADASAM_TEST_POSTGRES_URL")
    local: _LocalPostgres | None = None
    reason = ""
    if not url:
        bin_dir = _pg_bin()
        if bin_dir is None:
            reason = "no ADASAM_TEST_POSTGRES_URL and no PostgreSQL server binaries (initdb)"
        else:
            local = _LocalPostgres(Path(tempfile.mkdtemp(prefix="adasam-pg-")), bin_dir)
            try:
                local.start()
                url = local.url
            except (OSError, subprocess.SubprocessError) as error:
                detail = getattr(error, "stderr", "") or error
                reason = f"could not start a PostgreSQL server from {bin_dir}: {detail}"
                local.stop()
                local = None
    if not url:
        message = f'PostgreSQL suite not run: {reason} (run `eval "$(bash .ci/postgres.sh)"`)'
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield url
    finally:
        if local is not None:
            local.stop()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose connections work in a fresh schema of their own (dropped afterwards)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
        separator = "&" if "?" in postgres_url else "?"
        yield f"{postgres_url}{separator}options=-csearch_path%3D{schema}"
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()


# ---------------------------------------------------------------- stores


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each back-end."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'adasam.sqlite3'}"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[Store]:
    """An open store on each back-end."""
    with storage.open_store(database_url, tmp_path / "data") as opened:
        yield opened


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file URL."""
    return f"sqlite:///{tmp_path / 'db' / 'adasam.sqlite3'}"


@pytest.fixture
def sqlite_store(sqlite_url: str, tmp_path: Path) -> Iterator[Store]:
    """An open store on SQLite only (for SQLite-specific behaviour)."""
    with storage.open_store(sqlite_url, tmp_path / "data") as opened:
        yield opened


# ---------------------------------------------------------------- sample data


def disc(shape: tuple[int, int], center: tuple[int, int], radius: int) -> np.ndarray:
    """A filled disc mask."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - center[0]) ** 2 + (xx - center[1]) ** 2) < radius**2


class Samples:
    """Builds valid slices, predictions and corrections in a store."""

    disc = staticmethod(disc)

    def __init__(self, store: Store) -> None:
        self.store = store
        self._seed = 0

    def pixels(self, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
        self._seed += 1
        return np.random.default_rng(self._seed).normal(100, 30, size=shape).astype(np.float32)

    def slice(self, shape: tuple[int, int] = (48, 64), **kwargs: object) -> storage.SliceRecord:
        pixels = kwargs.pop("pixels", None)
        pixels = self.pixels(shape) if pixels is None else pixels
        display = np.zeros((*pixels.shape, 3), dtype=np.uint8)
        display[..., 0] = np.clip(pixels, 0, 255).astype(np.uint8)
        values: dict[str, object] = {"modality": "MR", "spacing": (0.8, 0.7), "units": "a.u."}
        values.update(kwargs)
        return storage.record_slice(
            self.store,
            content_hash=storage.pixels_hash(pixels),
            pixels=pixels,
            display=display,
            **values,  # type: ignore[arg-type]
        )

    def prediction(
        self, slice_record: storage.SliceRecord, structure: str = "VL", **kwargs: object
    ) -> storage.PredictionRecord:
        h, w = slice_record.shape
        candidates = [disc((h, w), (h // 2, w // 2), r) for r in (8, 11, 14)]
        return storage.record_prediction(
            self.store,
            slice_hash=slice_record.content_hash,
            structure=structure,
            candidates=candidates,
            scores=[0.91, 0.85, 0.6],
            **kwargs,  # type: ignore[arg-type]
        )

    def correction(
        self,
        prediction: storage.PredictionRecord,
        annotator: str = "ann",
        final: np.ndarray | None = None,
        rank: int = 1,
    ) -> storage.CorrectionRecord:
        storage.ensure_annotator(self.store, annotator)
        if final is None:
            shape = storage.get_slice(self.store, prediction.slice_hash).shape
            final = disc(shape, (shape[0] // 2, shape[1] // 2 + 2), 12)
        return storage.record_correction(
            self.store,
            prediction_id=prediction.id,
            chosen_rank=rank,
            final_mask=final,
            annotator=annotator,
            seconds=30.0,
            clicks=2,
        )


@pytest.fixture
def samples(store: Store) -> Samples:
    """Sample-data builder on the parametrised store."""
    return Samples(store)


@pytest.fixture
def sqlite_samples(sqlite_store: Store) -> Samples:
    """Sample-data builder on the SQLite store."""
    return Samples(sqlite_store)


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child Python processes that import the repository's packages."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@pytest.fixture
def child_env() -> dict[str, str]:
    """Environment for child processes (repository on PYTHONPATH)."""
    return subprocess_env()


@pytest.fixture
def throughput() -> list[str]:
    """Lines appended here are printed in the terminal summary."""
    return THROUGHPUT
