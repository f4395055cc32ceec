"""The example cases shown in the gallery (``assets/examples/examples.json``)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adasam.errors import IngestError
from adasam.imaging import load_slice

log = logging.getLogger("studio")

MANIFEST = "examples.json"


@dataclass(frozen=True, eq=False)
class Example:
    """One example case.

    Attributes:
        path: the file.
        title: the gallery caption.
        model: key of the model it suits (``thigh-mri``, ``liver-ct``), or None.
        thumbnail: its display image, uint8 (H, W, 3).
        content_hash: its slice's hash (a worklist case with this hash gets ``model``).
    """

    path: Path
    title: str
    model: str | None
    thumbnail: np.ndarray
    content_hash: str = ""


def load_examples(folder: Path, max_pixels: int) -> list[Example]:
    """The examples listed in ``folder/examples.json`` that exist and decode; others are
    skipped with a log line (the studio works without examples)."""
    manifest = Path(folder) / MANIFEST
    if not manifest.is_file():
        log.warning("no example manifest at %s", manifest)
        return []
    entries = json.loads(manifest.read_text())
    examples = []
    for entry in entries:
        path = Path(folder) / str(entry["file"])
        try:
            loaded = load_slice(path, max_pixels=max_pixels)
        except (IngestError, OSError) as exc:
            log.warning("example %s skipped: %s", path, exc)
            continue
        examples.append(
            Example(
                path=path,
                title=str(entry.get("title") or path.name),
                model=entry.get("model"),
                thumbnail=np.asarray(loaded.display),
                content_hash=loaded.content_hash,
            )
        )
    return examples
