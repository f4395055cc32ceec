"""ADA-SAM Studio: ``python app.py`` starts the web studio (settings → services → UI → launch).

Runs offline on the shipped demo model. Settings come from the environment: see
:mod:`adasam.settings` (data, device, model, database, limits) and :mod:`studio.config`
(host, port, identity, upload size, model concurrency).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Gradio's upload cache: a folder of the studio's own, swept at start-up (see studio.uploads).
os.environ.setdefault(
    "GRADIO_TEMP_DIR", os.path.join(tempfile.gettempdir(), "adasam-studio-uploads")
)  # the name is studio.uploads.STUDIO_CACHE_NAME (that module imports gradio: kept lazy here)


def main() -> int:
    """Build and serve the studio until interrupted; 2 on a configuration error."""
    from adasam.errors import AdaSamError
    from adasam.settings import Settings, environment
    from studio import StudioSettings, build_services, build_ui, launch_options
    from studio.identity import switch_off_server_proxy_headers
    from studio.uploads import gradio_upload_root, sweep_upload_cache

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        env = environment()
        settings = Settings.from_env(env)
        studio = StudioSettings.from_env(env)
    except (AdaSamError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log = logging.getLogger("studio")
    overridden = switch_off_server_proxy_headers(os.environ)  # see ADASAM_TRUSTED_PROXIES
    if overridden:
        log.warning(overridden)
    for warning in studio.warnings():
        log.warning("\n%s\n%s\n%s", "!" * 100, warning, "!" * 100)
    sweep_upload_cache(gradio_upload_root())  # what a crash left: raw uploads with PHI
    services = build_services(settings, studio)
    demo = build_ui(services)
    demo.queue(default_concurrency_limit=8)
    try:
        demo.launch(**launch_options(services))
    finally:
        services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
