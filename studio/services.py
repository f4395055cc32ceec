"""The long-lived objects the studio shares between sessions, built once at start-up.

Only immutable or thread-safe objects live here (the store, the model catalog with its
predictors, the submission ledger); everything about a user's case is in their session state.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from adasam.backends import backend_factory, startup_report
from adasam.settings import ASSETS_DIR, DEMO_BUNDLES, Settings, resolve_device
from storage import Store, open_store, stats
from studio.address_leases import AddressLeases
from studio.auxol_view import OnlineSpecialists
from studio.batch import ImportReport, import_files
from studio.catalog import ModelCatalog
from studio.config import StudioSettings
from studio.drafts import Drafts, Walks
from studio.examples import Example, load_examples
from studio.exports import ExportArea
from studio.model_pull import ModelPuller
from studio.submission import SubmissionLedger
from studio.uploads import gradio_upload_root

log = logging.getLogger("studio")

EXAMPLES_DIR = ASSETS_DIR / "examples"
CUSTOM_KEY = "custom"


@dataclass
class Services:
    """What every handler may use."""

    settings: Settings
    studio: StudioSettings
    store: Store
    catalog: ModelCatalog
    examples: list[Example]
    ledger: SubmissionLedger
    exports: ExportArea
    specialists: OnlineSpecialists | None = None
    puller: ModelPuller | None = None
    drafts: Drafts = field(default_factory=Drafts)
    walks: Walks = field(default_factory=Walks)
    address_leases: AddressLeases = field(default_factory=AddressLeases)
    upload_root: Path = field(default_factory=gradio_upload_root)

    def close(self) -> None:
        """Finish pending online steps and release the database connections."""
        if self.puller is not None:
            self.puller.close()
        if self.specialists is not None:
            self.specialists.close()
        self.store.close()


def bundle_dirs(settings: Settings) -> tuple[dict[str, Path], str]:
    """The candidate bundles (demo bundles + ``ADASAM_BUNDLE``) and the default key."""
    bundles = dict(DEMO_BUNDLES)
    chosen = Path(settings.bundle_dir).resolve()
    for key, path in bundles.items():
        if Path(path).resolve() == chosen:
            return bundles, key
    bundles[CUSTOM_KEY] = Path(settings.bundle_dir)
    return bundles, CUSTOM_KEY


def seed_worklist(services: Services) -> ImportReport | None:
    """Put the examples in the worklist when storage holds no slice yet (first start)."""
    if not services.studio.seed_worklist or not services.examples:
        return None
    if stats(services.store).slices > 0:
        return None
    report = import_files(
        services.store,
        [e.path for e in services.examples],
        max_pixels=services.settings.max_pixels,
    )
    log.info("worklist seeded with the examples: %s", report.message())
    return report


def build_services(
    settings: Settings, studio: StudioSettings, examples_dir: Path = EXAMPLES_DIR
) -> Services:
    """Open storage, find the models and examples, and seed the worklist on first start."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database_url, settings.data_dir)
    bundles, default_key = bundle_dirs(settings)
    device = resolve_device(settings.device)
    cache_dir = settings.cache_dir or settings.data_dir / "cache"
    for line in startup_report(settings.backend, cache_dir, device):
        log.info("%s", line)
    catalog = ModelCatalog(
        bundles,
        default_key=default_key,
        device=device,
        cache_size=settings.embed_cache_size,
        store=store,
        backend=backend_factory(settings.backend, cache_dir, device, log.info),
        cache_bytes=settings.embed_cache_bytes,
        cache_dtype=settings.embed_cache_dtype,
    )
    services = Services(
        settings=settings,
        studio=studio,
        store=store,
        catalog=catalog,
        examples=load_examples(examples_dir, settings.max_pixels),
        ledger=SubmissionLedger(),
        exports=ExportArea(Path(tempfile.gettempdir()) / "adasam-studio-downloads"),
        specialists=OnlineSpecialists(settings.data_dir / "auxol", enabled=studio.auxol),
    )
    if settings.model_repo:
        from storage.model_hub import model_remote

        remote = model_remote(settings.model_repo, token=settings.hub_token or None)
        services.puller = ModelPuller(
            store, remote, catalog.bump, studio.model_pull_seconds
        ).start()
    seed_worklist(services)
    return services
