"""The one module that reads the environment.

Everything else receives these values as arguments. Variables:

- ``ADASAM_DATA_DIR``: runtime data (database, blobs, model versions). Default ``./data``.
- ``ADASAM_DEVICE``: ``cpu``, ``cuda``, ``cuda:1`` or ``auto`` (default: CUDA when available).
- ``ADASAM_BUNDLE``: model bundle directory. Default: the shipped demo bundle.
- ``DATABASE_URL``: any SQLAlchemy URL. Default: SQLite file in the data directory.
- ``ADASAM_MAX_PIXELS``: largest accepted slice (pixels), checked from the file's header before
  decoding; a volume may hold 16× that. Default 25 000 000 (5000 × 5000).
- ``ADASAM_ALLOW_BURNED_IN``: ``1`` accepts DICOM images with ``BurnedInAnnotation = YES``
  (refused by default: their pixels may show identifying text).
- ``ADASAM_REQUEST_SECONDS``: time budget of one model request (decode + pipeline; a volume
  propagation, checked before each slice). Default 60.
- ``ADASAM_EMBED_CACHE``: image embeddings kept per predictor (LRU). Default 16.
- ``ADASAM_EMBED_CACHE_MB``: bound on one predictor's cached embeddings in MiB. Default 256.
- ``ADASAM_EMBED_CACHE_DTYPE``: how cached embeddings are held: ``float16`` (default: half the
  memory; every decode reads the rounded embedding, cached or not) or ``float32``.
- ``ADASAM_BACKEND``: where the encoder and classifier run: ``auto`` (default: the fastest
  backend that passed the accuracy guard on this machine, else ``torch``), ``torch``,
  ``onnxruntime-fp32``, ``onnxruntime-int8``, ``openvino-fp32``, ``openvino-bf16``,
  ``openvino-bf16-clicks``, ``openvino-int8`` (see :mod:`adasam.backends`).
- ``ADASAM_CACHE_DIR``: exported models and accuracy-guard records. Default ``DATA_DIR/cache``.
- ``ADASAM_LLM_ENDPOINT``, ``ADASAM_LLM_MODEL``: the SegEx LLM observer (off unless both are
  set): an OpenAI-compatible base URL (``http://host:8000/v1``) or ``hf:auto`` /
  ``hf:<provider>`` for Hugging Face inference providers, and the model name.
- ``ADASAM_LLM_TOKEN`` (else ``HF_TOKEN``): its API token. ``ADASAM_LLM_TIMEOUT``: seconds to
  wait for one answer (default 60).
- ``ADASAM_MODEL_REPO``: where fine-tuned model versions are published and pulled from
  (:mod:`storage.model_hub`): a Hugging Face Hub model repository id ``owner/name``, or a folder
  (absolute path or ``file:`` prefix) standing in for it. Unset: none. ``HF_TOKEN``: the Hub
  token for it (write access for the job, read for a private repository).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from adasam.errors import ConfigError

if TYPE_CHECKING:
    from adasam.llm_observer import LlmConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
DEMO_BUNDLES = {
    "thigh-mri": ASSETS_DIR / "bundles" / "thigh-mri",
    "liver-ct": ASSETS_DIR / "bundles" / "liver-ct",
}
DEFAULT_BUNDLE = DEMO_BUNDLES["thigh-mri"]


def environment() -> dict[str, str]:
    """A snapshot of the process environment: the project's only read of ``os.environ``.

    Other readers of variables (the studio's :class:`~studio.StudioSettings`) take this
    mapping as an argument, so tests hand them a plain dict.
    """
    return dict(os.environ)


def positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    """The positive integer in ``env[name]`` (``default`` when unset or blank).

    Raises :class:`~adasam.errors.ConfigError` naming the variable when it is not one.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    """The yes/no value of ``env[name]`` (``default`` when unset or blank).

    Raises :class:`~adasam.errors.ConfigError` naming the variable for anything else.
    """
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} must be 1/0, true/false, yes/no or on/off")


def one_of(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    """``env[name]`` when it is one of ``choices`` (``default`` when unset or blank).

    Raises :class:`~adasam.errors.ConfigError` naming the variable and the choices otherwise.
    """
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return raw


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    device: str
    bundle_dir: Path
    database_url: str
    max_pixels: int = 25_000_000
    embed_cache_size: int = 16
    allow_burned_in: bool = False
    request_seconds: int = 60
    llm_endpoint: str = ""
    llm_model: str = ""
    llm_token: str = field(default="", repr=False)
    llm_timeout_s: float = 60.0
    embed_cache_mb: int = 256
    embed_cache_dtype: str = "float16"
    backend: str = "auto"
    cache_dir: Path | None = None
    model_repo: str = ""
    hub_token: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = environment() if env is None else dict(env)
        data_dir = Path(env.get("ADASAM_DATA_DIR") or REPO_ROOT / "data").expanduser()
        database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'adasam.sqlite3'}"
        return cls(
            data_dir=data_dir,
            device=env.get("ADASAM_DEVICE", "auto") or "auto",
            bundle_dir=Path(env.get("ADASAM_BUNDLE") or DEFAULT_BUNDLE).expanduser(),
            database_url=database_url,
            max_pixels=positive_int(env, "ADASAM_MAX_PIXELS", 25_000_000),
            embed_cache_size=positive_int(env, "ADASAM_EMBED_CACHE", 16),
            allow_burned_in=flag(env, "ADASAM_ALLOW_BURNED_IN"),
            request_seconds=positive_int(env, "ADASAM_REQUEST_SECONDS", 60),
            llm_endpoint=env.get("ADASAM_LLM_ENDPOINT", "").strip(),
            llm_model=env.get("ADASAM_LLM_MODEL", "").strip(),
            llm_token=env.get("ADASAM_LLM_TOKEN") or env.get("HF_TOKEN") or "",
            llm_timeout_s=float(positive_int(env, "ADASAM_LLM_TIMEOUT", 60)),
            embed_cache_mb=positive_int(env, "ADASAM_EMBED_CACHE_MB", 256),
            embed_cache_dtype=one_of(
                env, "ADASAM_EMBED_CACHE_DTYPE", ("float16", "float32"), "float16"
            ),
            backend=env.get("ADASAM_BACKEND") or "auto",
            cache_dir=Path(env.get("ADASAM_CACHE_DIR") or data_dir / "cache").expanduser(),
            model_repo=model_repo(env.get("ADASAM_MODEL_REPO", "")),
            hub_token=env.get("HF_TOKEN", "").strip(),
        )

    @property
    def embed_cache_bytes(self) -> int:
        """``embed_cache_mb`` in bytes."""
        return self.embed_cache_mb * 1024 * 1024

    @property
    def llm_enabled(self) -> bool:
        """Whether the SegEx LLM observer is configured (endpoint and model set)."""
        return bool(self.llm_endpoint and self.llm_model)

    def llm_config(self) -> LlmConfig:
        """The LLM observer's configuration.

        Raises:
            ConfigError: it is off (endpoint or model unset) or misconfigured.
        """
        from adasam.llm_observer import LlmConfig

        return LlmConfig(
            endpoint=self.llm_endpoint,
            model=self.llm_model,
            token=self.llm_token,
            timeout_s=self.llm_timeout_s,
        )


def model_repo(raw: str) -> str:
    """``ADASAM_MODEL_REPO`` checked: empty, a folder (``/``, ``./``, ``../``, ``~`` or
    ``file:``) or a Hub repository id ``owner/name``."""
    value = raw.strip()
    folder = value.startswith(("/", "./", "../", "~", "file:"))
    if value and not folder and (value.count("/") != 1 or " " in value):
        raise ConfigError(
            f"ADASAM_MODEL_REPO={value!r}: give a Hub model repository id owner/name or a "
            "folder path (absolute, or with a file: prefix)"
        )
    return value


def resolve_device(name: str) -> str:
    """Turn ``auto`` into ``cuda`` or ``cpu``; pass anything else through (imports torch)."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
