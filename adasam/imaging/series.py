"""DICOM series (several files, or one zip) and multi-frame DICOM files as a :class:`Volume`.

Checks, each a clear :class:`~adasam.errors.IngestError`:

* **One series.** Every file has the same SeriesInstanceUID; a zip with several series, or a
  mixed upload, is refused with the number of files in each series.
* **Ordered in space.** Slices are sorted by ``ImagePositionPatient · n`` with ``n`` the slice
  normal (row direction × column direction of ImageOrientationPatient); files without a
  position or orientation cannot be ordered and are refused, as are two slices at one position.
* **Consistent.** Same size, orientation (to 1e-3) and pixel spacing (to 0.1 %) on every slice;
  slice steps equal to 1 % of the median step (or 0.01 mm). A step more than 1.5 times the
  median is a **gap** (missing slices) and is named as such.
* **Zip safety.** At most :data:`MAX_ZIP_MEMBERS` members, no nested archives, no encrypted
  members, the declared uncompressed total under the volume budget, no member with a
  compression ratio above :data:`MAX_ZIP_RATIO` (zip bombs), and every member is read with a
  bound (a header that lies about its size cannot make it read more).

De-identification is the one of single files: metadata comes from
:func:`adasam.imaging.deid.dicom_metadata` (allowlist, first slice) and every pixel value is
decoded by :func:`adasam.imaging.dicom.decode_dicom`. Error messages name files by number
("file 3 of 40"), never by name. The UIDs needed to reference the series from a DICOM-SEG are
kept in memory only (:class:`~adasam.imaging.volume3d.SeriesReference`).
"""

from __future__ import annotations

import math
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut

from adasam.errors import IngestError
from adasam.imaging.decoded import VOLUME_FACTOR, check_plane, check_volume
from adasam.imaging.deid import check_burned_in, dicom_metadata
from adasam.imaging.dicom import (
    _decode_frame,
    _file_window,
    _frame_view,
    _spacing,
    decode_dicom,
    dicom_geometry,
    read_dataset,
)
from adasam.imaging.load import _make_finite
from adasam.imaging.sniff import Source, detect_format, open_source
from adasam.imaging.volume3d import LPS_TO_RAS, SeriesReference, SliceReference, Volume
from adasam.imaging.windows import WINDOW_PRESETS, Window, auto_window

MAX_ZIP_MEMBERS = 4096
"""The most files a zip may hold."""

MAX_ZIP_RATIO = 200.0
"""The largest uncompressed/compressed ratio of one zip member (DICOM rarely exceeds 20)."""

_BYTES_PER_VOXEL = 4
"""Budget of uncompressed zip bytes per allowed voxel (16-bit pixels plus headers)."""


@dataclass(frozen=True)
class _Header:
    """What ordering and checking a file needs (no identifying value is shown to anyone)."""

    number: int
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    rows: int
    cols: int
    frames: int
    samples: int
    orientation: np.ndarray | None
    position: np.ndarray | None
    pixel_spacing: tuple[float, float] | None


def _floats(value: object, n: int) -> np.ndarray | None:
    try:
        out = np.array([float(v) for v in value], dtype=np.float64)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) and np.isfinite(out).all() else None


def _header(ds: Dataset, number: int) -> _Header:
    rows, cols, frames = dicom_geometry(ds)
    return _Header(
        number=number,
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
        sop_class_uid=str(ds.get("SOPClassUID", "") or ""),
        sop_instance_uid=str(ds.get("SOPInstanceUID", "") or ""),
        rows=rows,
        cols=cols,
        frames=frames,
        samples=int(ds.get("SamplesPerPixel", 1) or 1),
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        position=_floats(ds.get("ImagePositionPatient"), 3),
        pixel_spacing=_spacing(ds),
    )


# -- zip ----------------------------------------------------------------------------------------
def is_zip(src: Source) -> bool:
    return src.head.startswith(b"PK\x03\x04") or src.head.startswith(b"PK\x05\x06")


def _skip_member(info: zipfile.ZipInfo) -> bool:
    base = info.filename.replace("\\", "/").rsplit("/", 1)[-1]
    return (
        info.is_dir()
        or info.filename.startswith("__MACOSX/")
        or base.startswith(".")
        or base.upper() == "DICOMDIR"
    )


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, number: int) -> bytes:
    with archive.open(info) as fh:
        data = fh.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise IngestError(
            f"File {number} of the zip is larger than its header says (a damaged or malicious "
            "archive). Make a new zip of the series."
        )
    return data


def read_zip(src: Source, max_pixels: int) -> list[bytes]:
    """The members of a zip upload (directories, ``__MACOSX``, hidden files and DICOMDIR
    skipped), as bytes, in archive order.

    Raises:
        IngestError: damaged, encrypted, nested, too many members, too large, or a zip bomb.
    """
    budget = VOLUME_FACTOR * max_pixels * _BYTES_PER_VOXEL
    try:
        with src.open() as raw, zipfile.ZipFile(raw) as archive:
            infos = [i for i in archive.infolist() if not _skip_member(i)]
            _check_zip_infos(infos, budget)
            return [_read_member(archive, info, k + 1) for k, info in enumerate(infos)]
    except IngestError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise IngestError(
            "This zip archive is damaged and could not be read. Make a new zip of the series."
        ) from exc
    except NotImplementedError as exc:
        raise IngestError(
            "This zip archive uses a compression method the studio cannot read. Make a new zip "
            "with ordinary (deflate) compression."
        ) from exc


def _check_zip_infos(infos: list[zipfile.ZipInfo], budget: int) -> None:
    if not infos:
        raise IngestError("This zip archive holds no files. Zip the DICOM files of one series.")
    if len(infos) > MAX_ZIP_MEMBERS:
        raise IngestError(
            f"This zip archive holds {len(infos):,} files; the limit is {MAX_ZIP_MEMBERS:,}. "
            "Upload one series at a time."
        )
    total = sum(i.file_size for i in infos)
    if total > budget:
        raise IngestError(
            f"This zip archive unpacks to {total / 1e6:,.0f} MB; the limit is "
            f"{budget / 1e6:,.0f} MB. Upload one series at a time, or crop it first."
        )
    for k, info in enumerate(infos, start=1):
        if info.flag_bits & 0x1:
            raise IngestError(
                "This zip archive is password-protected. Make a zip without a password."
            )
        if info.filename.lower().endswith((".zip", ".gz", ".tar", ".7z", ".rar")):
            raise IngestError(
                f"File {k} of the zip is itself an archive. Unpack it and zip the DICOM files "
                "of one series directly."
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > MAX_ZIP_RATIO and info.file_size > 1_000_000:
            raise IngestError(
                f"File {k} of the zip expands {ratio:,.0f}-fold (the limit is "
                f"{MAX_ZIP_RATIO:.0f}); this looks like a zip bomb and was not unpacked."
            )


# -- series -------------------------------------------------------------------------------------
def _open_all(sources: Sequence[Source]) -> list[tuple[Source, _Header]]:
    out = []
    n = len(sources)
    for k, src in enumerate(sources, start=1):
        try:
            if detect_format(src) != "dicom":
                raise IngestError("not DICOM")
            ds = read_dataset(src, header_only=True)
        except IngestError as exc:
            raise IngestError(
                f"File {k} of {n} is not a DICOM image of a series ({exc}). Upload only the "
                "DICOM files of one series."
            ) from None
        out.append((src, _header(ds, k)))
    return out


def _check_one_series(headers: Sequence[_Header]) -> None:
    counts = Counter(h.series_uid for h in headers)
    if len(counts) > 1:
        sizes = ", ".join(str(c) for c in sorted(counts.values(), reverse=True))
        raise IngestError(
            f"These files belong to {len(counts)} different DICOM series (with {sizes} files). "
            "Upload the files of one series at a time."
        )
    multi = [h.number for h in headers if h.frames > 1]
    if multi:
        raise IngestError(
            f"File {multi[0]} is a multi-frame image, not one slice of a series. Upload it on "
            "its own."
        )
    if any(h.samples != 1 for h in headers):
        raise IngestError("This series holds colour images; only grey-level volumes are read.")
    sizes_hw = {(h.rows, h.cols) for h in headers}
    if len(sizes_hw) > 1:
        raise IngestError(
            "The slices of this series have different sizes "
            f"({', '.join(f'{c}×{r}' for r, c in sorted(sizes_hw))}); it cannot be stacked."
        )
    uids = Counter(h.sop_instance_uid for h in headers if h.sop_instance_uid)
    dup = [u for u, c in uids.items() if c > 1]
    if dup:
        raise IngestError(
            "The same DICOM slice was uploaded twice (two files with one SOP Instance UID). "
            "Remove the copy."
        )


def order_slices(
    orientations: Sequence[np.ndarray | None],
    positions: Sequence[np.ndarray | None],
    spacings: Sequence[tuple[float, float] | None],
) -> tuple[np.ndarray, np.ndarray, float]:
    """Sort slices along their normal and check the geometry.

    Args:
        orientations: ImageOrientationPatient per slice (6 floats), None when missing.
        positions: ImagePositionPatient per slice (3 floats, LPS mm), None when missing.
        spacings: PixelSpacing (row, col) mm per slice, None when missing.

    Returns:
        ``(order, normal, step)``: int indices that sort the slices by ascending position along
        ``normal`` (unit float64 (3,)), and the median slice step in mm.

    Raises:
        IngestError: a missing position/orientation/spacing, differing orientation or pixel
            spacing, two slices at one position, a gap, or uneven steps.
    """
    n = len(positions)
    if n < 2:
        raise IngestError(
            "A volume needs at least two slices; this upload holds one. Upload all the files of "
            "the series (or a zip of them)."
        )
    if any(o is None for o in orientations) or any(p is None for p in positions):
        raise IngestError(
            "Some slices have no ImagePositionPatient / ImageOrientationPatient, so the series "
            "cannot be put in order. Export it again with its geometry."
        )
    if any(s is None for s in spacings):
        raise IngestError("Some slices have no PixelSpacing; the volume's geometry is unknown.")
    iop = np.stack(orientations)  # type: ignore[arg-type]
    if np.abs(iop - iop[0]).max() > 1e-3:
        raise IngestError(
            "The slices of this series have different orientations (ImageOrientationPatient), "
            "e.g. a localizer mixed in. Upload slices of one orientation."
        )
    px = np.array(spacings, dtype=np.float64)
    if np.abs(px - px[0]).max() > 1e-3 * px[0].max():
        raise IngestError(
            "The slices of this series have different pixel spacings; it cannot be stacked."
        )
    normal = np.cross(iop[0, :3], iop[0, 3:])
    norm = float(np.linalg.norm(normal))
    if not math.isfinite(norm) or norm < 1e-6:
        raise IngestError("This series' ImageOrientationPatient is not valid (no slice normal).")
    normal = normal / norm
    along = np.stack(positions) @ normal  # type: ignore[arg-type]
    order = np.argsort(along, kind="stable")
    steps = np.diff(along[order])
    _check_steps(steps)
    return order, normal, float(np.median(steps))


def _check_steps(steps: np.ndarray) -> None:
    if (steps < 1e-3).any():
        raise IngestError(
            "Two slices of this series lie at the same position: the upload holds duplicates or "
            "two acquisitions. Upload one copy of each slice."
        )
    median = float(np.median(steps))
    big = steps > 1.5 * median
    if big.any():
        missing = int(np.rint(steps[big] / median - 1).sum())
        raise IngestError(
            f"This series has a gap: about {missing} slice(s) are missing (steps of "
            f"{steps[big].max():.3g} mm where the others are {median:.3g} mm). Upload every "
            "slice of the series."
        )
    tol = max(0.01 * median, 0.01)
    if np.abs(steps - median).max() > tol:
        raise IngestError(
            f"The slices of this series are unevenly spaced ({steps.min():.3g} to "
            f"{steps.max():.3g} mm); it cannot be stacked as one volume."
        )


def _affine(position0: np.ndarray, slice_vec: np.ndarray, iop: np.ndarray, px: tuple[float, float]):
    """RAS affine of index (k, row, col): columns = slice step, row step, column step, origin."""
    lps = np.eye(4)
    lps[:3, 0] = slice_vec
    lps[:3, 1] = iop[3:] * px[0]  # down a column: the column direction cosines × row spacing
    lps[:3, 2] = iop[:3] * px[1]  # along a row: the row direction cosines × column spacing
    lps[:3, 3] = position0
    return LPS_TO_RAS @ lps


def _default_window(units: str, voxels: np.ndarray, file_window: Window | None) -> Window:
    if file_window is not None:
        return file_window
    if units == "HU":
        return WINDOW_PRESETS["ct-abdomen"]
    return auto_window(voxels)


def _finite(values: np.ndarray) -> np.ndarray:
    """float32 with NaN/inf replaced as :func:`adasam.imaging.load_slice` does (whole volume)."""
    return _make_finite(values)[0]


def load_series(
    sources: Sequence[Source], *, max_pixels: int, allow_burned_in: bool = False
) -> Volume:
    """A single-frame DICOM series (one :class:`Source` per file) as a :class:`Volume`
    (a file declaring burned-in annotation is refused unless ``allow_burned_in``)."""
    if len(sources) > MAX_ZIP_MEMBERS:
        raise IngestError(
            f"{len(sources):,} files were uploaded; the limit is {MAX_ZIP_MEMBERS:,}."
        )
    opened = _open_all(sources)
    headers = [h for _, h in opened]
    _check_one_series(headers)
    check_plane(headers[0].rows, headers[0].cols, max_pixels)
    check_volume((len(headers), headers[0].rows, headers[0].cols), max_pixels, what="series")
    order, _, step = order_slices(
        [h.orientation for h in headers],
        [h.position for h in headers],
        [h.pixel_spacing for h in headers],
    )
    planes = []
    first = None
    for k in order:
        decoded = decode_dicom(
            opened[k][0], slice_index=None, max_pixels=max_pixels, allow_burned_in=allow_burned_in
        )
        first = first or decoded
        planes.append(decoded.values)
    assert first is not None
    voxels = _finite(np.stack(planes))
    h0, hl = headers[order[0]], headers[order[-1]]
    slice_vec = (hl.position - h0.position) / (len(order) - 1)  # type: ignore[operator]
    px = h0.pixel_spacing
    assert px is not None and h0.orientation is not None and h0.position is not None
    metadata = dict(first.metadata)
    metadata["NumberOfSlices"] = len(order)
    reference = SeriesReference(
        study_uid=h0.study_uid,
        series_uid=h0.series_uid,
        frame_of_reference_uid=h0.frame_of_reference_uid,
        slices=tuple(
            SliceReference(headers[k].sop_class_uid, headers[k].sop_instance_uid) for k in order
        ),
        orientation=tuple(float(v) for v in h0.orientation),
        positions=np.stack([headers[k].position for k in order]),  # type: ignore[misc]
        modality=first.modality,
    )
    return Volume(
        voxels=voxels,
        spacing=(step, px[0], px[1]),
        affine=_affine(h0.position, slice_vec, h0.orientation, px),
        modality=first.modality,
        units=first.units,
        default_window=_default_window(first.units, voxels, first.file_window),
        source_format="dicom-series",
        source_name=f"DICOM series, {len(order)} slices",
        metadata=metadata,
        invert=first.invert,
        reference=reference,
    )


# -- multi-frame --------------------------------------------------------------------------------
def _frame_geometry(ds: Dataset, frames: int) -> tuple[list, list, list]:
    """Per-frame orientation, position and pixel spacing (functional groups, else top level)."""
    shared = (ds.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    orientations, positions, spacings = [], [], []
    for f in range(frames):
        group = per_frame[f] if len(per_frame) == frames else Dataset()
        orient = pos = None
        for g in (group, shared):
            seq = g.get("PlaneOrientationSequence")
            if orient is None and seq:
                orient = _floats(seq[0].get("ImageOrientationPatient"), 6)
            seq = g.get("PlanePositionSequence")
            if pos is None and seq:
                pos = _floats(seq[0].get("ImagePositionPatient"), 3)
        orientations.append(
            orient if orient is not None else _floats(ds.get("ImageOrientationPatient"), 6)
        )
        positions.append(pos)
        spacings.append(_spacing(_frame_view(ds, f, frames)))
    return orientations, positions, spacings


def load_multiframe(src: Source, *, max_pixels: int, allow_burned_in: bool = False) -> Volume:
    """A multi-frame DICOM file as a :class:`Volume` (frames sorted by their plane positions
    when the file has them; else in file order with ``geometry_known=False``; refused when it
    declares burned-in annotation, unless ``allow_burned_in``)."""
    ds = read_dataset(src)
    check_burned_in(ds, allow=allow_burned_in)
    rows, cols, frames = dicom_geometry(ds)
    if frames < 2:
        raise IngestError(
            "This DICOM file is a single slice, not a volume. Upload all the files of the "
            "series together (several files, or one zip)."
        )
    check_plane(rows, cols, max_pixels)
    check_volume((frames, rows, cols), max_pixels, what="multi-frame image")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise IngestError("This multi-frame DICOM holds colour images; only grey volumes are read.")
    raw = np.asarray(_decode_frame(ds, None)).reshape(frames, rows, cols)
    views = [_frame_view(ds, f, frames) for f in range(frames)]
    values = np.stack([np.asarray(apply_modality_lut(raw[f], views[f])) for f in range(frames)])
    orientations, positions, spacings = _frame_geometry(ds, frames)
    known = all(p is not None for p in positions) and all(o is not None for o in orientations)
    if known:
        order, _, step = order_slices(orientations, positions, spacings)
    else:
        order = np.arange(frames)
        step = float(ds.get("SpacingBetweenSlices", 0) or ds.get("SliceThickness", 0) or 1.0)
    modality_code = str(ds.get("Modality", "") or "").upper()
    modality = modality_code if modality_code in ("CT", "MR") else "OT"
    rescale_type = str(views[0].get("RescaleType", "") or "").upper()
    units = "HU" if modality == "CT" and rescale_type in ("", "HU") else "a.u."
    voxels = _finite(values[order])
    px = spacings[0] or (1.0, 1.0)
    if known:
        p0, pl = positions[order[0]], positions[order[-1]]
        affine = _affine(p0, (pl - p0) / (frames - 1), orientations[0], px)
    else:
        affine = np.diag([step, px[0], px[1], 1.0])
    metadata = dicom_metadata(ds, views[0])
    metadata["NumberOfSlices"] = frames
    reference = SeriesReference(
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
        slices=tuple(
            SliceReference(str(ds.SOPClassUID), str(ds.SOPInstanceUID), int(f) + 1) for f in order
        ),
        orientation=tuple(float(v) for v in (orientations[0] if known else (1, 0, 0, 0, 1, 0))),
        positions=np.stack([positions[f] for f in order]) if known else np.zeros((frames, 3)),
        modality=modality,
    )
    photometric = str(ds.get("PhotometricInterpretation", "") or "").upper()
    return Volume(
        voxels=voxels,
        spacing=(step, px[0], px[1]),
        affine=affine,
        modality=modality,
        units=units,
        default_window=_default_window(units, voxels, _file_window(views[0])),
        source_format="dicom-multiframe",
        source_name=f"multi-frame DICOM, {frames} frames",
        metadata=metadata,
        invert=photometric == "MONOCHROME1",
        geometry_known=known,
        reference=reference,
    )


def sources_from_upload(files: Sequence[str | bytes | object], max_pixels: int) -> list[Source]:
    """One :class:`Source` per DICOM file of an upload: a single zip is unpacked, several
    paths/bytes are taken as they are (a zip among several files is refused)."""
    sources = [open_source(f, name=f"file {k + 1}") for k, f in enumerate(files)]  # type: ignore[arg-type]
    if len(sources) == 1 and is_zip(sources[0]):
        members = read_zip(sources[0], max_pixels)
        return [open_source(m, name=f"file {k + 1}") for k, m in enumerate(members)]
    if any(is_zip(s) for s in sources):
        raise IngestError(
            "A zip archive was uploaded together with other files. Upload either one zip of "
            "the series or its DICOM files."
        )
    return sources
