"""What every export shares: final masks grouped by slice, case names, safe output folders."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from storage.errors import InvalidInputError
from storage.records import FinalMask, SliceRecord
from storage.store import Store
from storage.training import final_masks


@dataclass(frozen=True, eq=False)
class Case:
    """One slice and its final masks, one per structure."""

    name: str
    slice: SliceRecord
    masks: dict[str, FinalMask]


def case_name(record: SliceRecord) -> str:
    """A stable, filesystem-safe name for a slice: ``s000042_1a2b3c4d``."""
    return f"s{record.id:06d}_{record.content_hash[:8]}"


def collect_cases(
    store: Store, *, structures: Collection[str] | None = None, modality: str | None = None
) -> list[Case]:
    """Final masks grouped by slice (slices of another modality left out when one is given)."""
    cases: dict[int, Case] = {}
    for final in final_masks(store, structures=structures):
        if modality is not None and final.slice.modality != modality:
            continue
        case = cases.get(final.slice.id)
        if case is None:
            case = cases[final.slice.id] = Case(case_name(final.slice), final.slice, {})
        case.masks[final.structure] = final
    return list(cases.values())


@contextmanager
def output_folder(out_dir: Path) -> Iterator[Path]:
    """A staging folder that becomes ``out_dir`` only when the export finished.

    ``out_dir`` must not exist or be empty: an export never overwrites files. An interrupted
    export leaves no half-written ``out_dir`` behind.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InvalidInputError(f"{out_dir} exists and is not an empty folder; choose a new one")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        yield staging
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
