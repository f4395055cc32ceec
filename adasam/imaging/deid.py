"""De-identification on ingest: only an allowlist of technical DICOM attributes is kept.

Rule: an attribute is copied into ``Slice.metadata`` only if its keyword is in
:data:`DICOM_ALLOWLIST` *and* its value representation is a coded string or a number
(:data:`SAFE_VRS`). Free text (LO, LT, SH, ST, UT: descriptions, institution, station,
manufacturer), person names (PN), dates and times (DA, DT, TM), ages (AS) and UIDs (UI) are never
copied, whatever their keyword; private tags never are either. Coded strings are further checked
against the DICOM CS alphabet (upper-case letters, digits, space, underscore; 16 characters).

Nothing else of the file survives ingestion: the pixel data is decoded to an array and the dataset
is dropped. File names are reduced to their base name (:func:`adasam.imaging.sniff.safe_name`);
a file name that itself holds a patient's name is the uploader's responsibility.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydicom.dataset import Dataset

MetadataValue = str | int | float

DICOM_ALLOWLIST: tuple[str, ...] = (
    "Modality",
    "BodyPartExamined",
    "PatientPosition",
    "ImageType",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "WindowCenter",
    "WindowWidth",
    "KVP",
    "XRayTubeCurrent",
    "ExposureTime",
    "MagneticFieldStrength",
    "RepetitionTime",
    "EchoTime",
    "InversionTime",
    "FlipAngle",
    "ScanningSequence",
    "SequenceVariant",
    "MRAcquisitionType",
)
"""DICOM keywords that may reach ``Slice.metadata`` (if their VR is in :data:`SAFE_VRS`)."""

SAFE_VRS = frozenset({"CS", "DS", "IS", "US", "SS", "UL", "SL", "FL", "FD"})
"""Value representations that cannot hold names, dates or identifiers."""

_CS = re.compile(r"^[A-Z0-9 _]{0,16}$")


def _scalar(value: Any, vr: str) -> MetadataValue | None:
    if vr == "CS":
        text = str(value).strip()
        return text if _CS.match(text) else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    if vr in ("IS", "US", "SS", "UL", "SL"):
        return int(number)
    return number


def _value(element: Any) -> MetadataValue | None:
    vr = str(element.VR)
    if vr not in SAFE_VRS or element.value is None or element.value == "":
        return None
    raw = element.value
    if isinstance(raw, (bytes, bytearray)):
        return None
    items = list(raw) if hasattr(raw, "__iter__") and not isinstance(raw, str) else [raw]
    values = [_scalar(item, vr) for item in items]
    if not values or any(v is None for v in values):
        return None
    if len(values) == 1:
        return values[0]
    return "\\".join(str(v) for v in values)


def dicom_metadata(*datasets: Dataset) -> dict[str, MetadataValue]:
    """The allowlisted technical attributes of ``datasets`` (later ones override earlier ones).

    Args:
        datasets: the file's dataset, then optionally a dataset with the chosen frame's
            functional-group values.

    Returns:
        ``{keyword: value}`` with str, int or float values; multi-valued attributes joined
        with a backslash (``"0.66\\\\0.66"``).
    """
    out: dict[str, MetadataValue] = {}
    for ds in datasets:
        for keyword in DICOM_ALLOWLIST:
            if keyword not in ds:
                continue
            element = ds[keyword]
            if element.tag.is_private:
                continue
            value = _value(element)
            if value is not None:
                out[keyword] = value
    return out
