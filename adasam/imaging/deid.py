"""The de-identification policy of ingestion: the one place that decides what of a file is kept.

The CLI and the studio both ingest through :func:`adasam.imaging.load_slice`, which applies it:

* **DICOM attributes: an allowlist, coded values clamped.** An attribute is copied into
  ``Slice.metadata`` only if its keyword is in :data:`DICOM_ALLOWLIST`, its value
  representation is the one the DICOM dictionary gives that keyword (a file that declares
  ``BodyPartExamined`` as LO free text loses it) and that VR is a coded string or a number
  (:data:`SAFE_VRS`). Coded strings must also be one of the attribute's defined terms
  (:data:`DEFINED_TERMS`; PS3.3 and PS3.16), so text planted in ``BodyPartExamined`` or
  ``ImageType`` is dropped, value by value. Free text (LO, LT, SH, ST, UT), person names (PN),
  dates and times (DA, DT, TM), ages (AS), UIDs (UI), sequences and private tags never reach
  the slice.
* **PS3.15 basic profile.** None of the allowlisted attributes is one that the Basic
  Application Level Confidentiality Profile (PS3.15 Table E.1-1) removes, empties or replaces;
  everything that table names is absent because it is not on the allowlist. The slice records
  ``PatientIdentityRemoved = YES`` and :data:`DEIDENTIFICATION_METHOD`.
* **Burned-in annotation.** ``BurnedInAnnotation = YES`` means the pixels themselves show
  identifying text; such files are refused (:func:`check_burned_in`) unless the caller allows
  them (``ADASAM_ALLOW_BURNED_IN=1``).
* **Names.** The file name is never kept: a slice is named :func:`case_name` of its
  de-identified pixels (``case-3f2a9c81d0e4``). The uploader sees the original name in their
  own session only.

Nothing else of the file survives ingestion: the pixel data is decoded to an array and the dataset
is dropped.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

from adasam.errors import IngestError

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

DEIDENTIFICATION_METHOD = (
    "ADA-SAM ingestion: PS3.15 basic profile (113100); technical allowlist, coded values "
    "clamped to defined terms; file name replaced"
)
"""What ``metadata["DeidentificationMethod"]`` says of every DICOM slice."""

_BODY_PARTS = (
    "ABDOMEN ABDOMENPELVIS ADRENAL ANKLE AORTA ARM AXILLA BACK BLADDER BRAIN BREAST BRONCHUS "
    "BUTTOCK CALCANEUS CALF CAROTID CEREBELLUM CERVIX CHEST CHESTABDOMEN CHESTABDPELVIS "
    "CIRCLEOFWILLIS CLAVICLE COCCYX COLON CORNEA CORONARYARTERY CSPINE CTSPINE DUODENUM EAR "
    "ELBOW ENTIREBODY "
    "ESOPHAGUS EXTREMITY EYE EYELID FACE FEMUR FINGER FOOT GALLBLADDER HAND HEAD HEADNECK HEART "
    "HIP HUMERUS IAC ILEUM ILIUM JAW JEJUNUM KIDNEY KNEE LARYNX LEG LIVER LSPINE LSSPINE LUNG "
    "MAXILLA MEDIASTINUM MOUTH NECK NECKCHEST NECKCHESTABDOMEN NECKCHESTABDPELV NOSE ORBIT OVARY "
    "PANCREAS PAROTID PATELLA PELVIS PENIS PHARYNX PROSTATE RECTUM RIB SACRUM SCAPULA SCLERA "
    "SCROTUM SHOULDER SKULL SPINE SPLEEN SSPINE STERNUM STOMACH SUBMANDIBULAR TESTIS THIGH THUMB "
    "THYMUS THYROID TIBIA TOE TONGUE TRACHEA TSPINE TLSPINE UPRGASTROTRACT URETER URETHRA UTERUS "
    "VAGINA VULVA WHOLEBODY WRIST ZYGOMA"
)
DEFINED_TERMS: dict[str, frozenset[str]] = {
    "Modality": frozenset(
        [
            "AR",
            "ASMT",
            "AU",
            "BDUS",
            "BI",
            "BMD",
            "CFM",
            "CR",
            "CT",
            "DG",
            "DOC",
            "DX",
            "ECG",
            "EEG",
            "EMG",
            "EOG",
            "EPS",
            "ES",
            "FID",
            "GM",
            "HC",
            "HD",
            "IO",
            "IOL",
            "IVOCT",
            "IVUS",
            "KER",
            "KO",
            "LEN",
            "LS",
            "MG",
            "MR",
            "M3D",
            "NM",
            "OAM",
            "OCT",
            "OP",
            "OPM",
            "OPT",
            "OPTBSV",
            "OPTENF",
            "OPV",
            "OSS",
            "OT",
            "PLAN",
            "POS",
            "PR",
            "PT",
            "PX",
            "REG",
            "RESP",
            "RF",
            "RG",
            "RTDOSE",
            "RTIMAGE",
            "RTPLAN",
            "RTRECORD",
            "RTSTRUCT",
            "RWV",
            "SEG",
            "SM",
            "SMR",
            "SR",
            "SRF",
            "STAIN",
            "TG",
            "US",
            "VA",
            "XA",
            "XC",
        ]
    ),
    "BodyPartExamined": frozenset(_BODY_PARTS.split()),
    "PatientPosition": frozenset(
        [
            "HFP",
            "HFS",
            "HFDR",
            "HFDL",
            "FFP",
            "FFS",
            "FFDR",
            "FFDL",
            "LFP",
            "LFS",
            "RFP",
            "RFS",
            "AFDR",
            "AFDL",
            "PFDR",
            "PFDL",
        ]
    ),
    "ImageType": frozenset(
        {
            *[
                "ORIGINAL",
                "DERIVED",
                "PRIMARY",
                "SECONDARY",
                "AXIAL",
                "LOCALIZER",
                "REFORMATTED",
                "MPR",
                "MIP",
                "MINIP",
                "PROJECTION",
                "OTHER",
                "M",
                "P",
                "R",
                "I",
                "MAG",
                "PHASE",
                "REAL",
                "IMAGINARY",
                "DIFFUSION",
                "ADC",
                "FA",
                "TRACEW",
                "EADC",
                "NORM",
                "ND",
                "MOCO",
                "DIS2D",
                "DIS3D",
                "VOLUME",
                "NONE",
                "MIXED",
                "SUBTRACTION",
                "POST_PROCESSED",
                "DRR",
                "FLUENCE",
                "PORTAL",
                "SIMULATOR",
                "VERIFICATION",
                "CINE",
                "STATIC",
                "DYNAMIC",
                "GATED",
                "WHOLE",
                "BODY",
                "TOMO",
                "RECON",
                "EMISSION",
                "TRANSMISSION",
                "T1",
                "T2",
                "PD",
                "FLAIR",
                "DWI",
                "CSA",
                "CSAPARALLEL",
            ],
            "PROJECTION IMAGE",
            "CSA RESAMPLED",
            "CSA MPR",
            "CSA 3D EDITOR",
            "RECON TOMO",
            "GATED TOMO",
            "WHOLE BODY",
        }
    ),
    "PhotometricInterpretation": frozenset(
        {
            "MONOCHROME1",
            "MONOCHROME2",
            "PALETTE COLOR",
            "RGB",
            "HSV",
            "ARGB",
            "CMYK",
            "YBR_FULL",
            "YBR_FULL_422",
            "YBR_PARTIAL_422",
            "YBR_PARTIAL_420",
            "YBR_ICT",
            "YBR_RCT",
            "XYB",
        }
    ),
    "RescaleType": frozenset(["OD", "HU", "US", "MGML", "Z_EFF", "ED", "EDW", "HU_MOD", "PCT"]),
    "ScanningSequence": frozenset(["SE", "IR", "GR", "EP", "RM"]),
    "SequenceVariant": frozenset(["SK", "MTC", "SS", "TRSS", "SP", "MP", "OSP", "NONE"]),
    "MRAcquisitionType": frozenset({"2D", "3D"}),
}
"""Defined terms per coded attribute (PS3.3 C.7/C.8, PS3.16 CID 4031 for body parts): any other
value is dropped (for multi-valued attributes, value by value)."""

_CS = re.compile(r"^[A-Z0-9 _]{0,16}$")


def case_name(content_hash: str) -> str:
    """The neutral name of a case: ``case-`` and the first 12 hex digits of the hash of its
    de-identified pixels (the same image always gets the same name; a name says nothing of the
    patient or the file)."""
    return f"case-{content_hash[:12]}"


def check_burned_in(ds: Dataset, *, allow: bool) -> bool:
    """Whether the pixels carry burned-in identifying text (``BurnedInAnnotation = YES``).

    Raises:
        IngestError: the annotation is declared and ``allow`` is False.
    """
    declared = str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"
    if declared and not allow:
        raise IngestError(
            "This DICOM image declares burned-in annotation (BurnedInAnnotation = YES): its "
            "pixels may show the patient's name or other identifying text, so it was refused. "
            "Remove the text from the pixels (or export a clean image) and upload it again; an "
            "administrator can accept such images with ADASAM_ALLOW_BURNED_IN=1."
        )
    return declared


def _scalar(value: Any, vr: str, terms: frozenset[str] | None) -> MetadataValue | None:
    if vr == "CS":
        text = str(value).strip()
        if not _CS.match(text):
            return None
        return text if terms is None or text in terms else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    if vr in ("IS", "US", "SS", "UL", "SL"):
        return int(number)
    return number


def _value(keyword: str, element: Any) -> MetadataValue | None:
    vr = str(element.VR)
    try:
        expected = dictionary_VR(keyword)
    except KeyError:
        return None
    terms = DEFINED_TERMS.get(keyword)
    if terms is not None and vr == expected == "LO":
        vr = "CS"  # a coded LO (RescaleType): kept only as one of its defined terms
    if (vr != expected and expected != "LO") or vr not in SAFE_VRS:
        return None
    if element.value is None or element.value == "":
        return None
    raw = element.value
    if isinstance(raw, (bytes, bytearray)):
        return None
    items = list(raw) if hasattr(raw, "__iter__") and not isinstance(raw, str) else [raw]
    values = [_scalar(item, vr, terms) for item in items]
    if vr == "CS":
        values = [v for v in values if v not in (None, "")]  # clamp: unknown terms dropped
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
        with a backslash (``"0.66\\\\0.66"``); plus ``PatientIdentityRemoved`` and
        ``DeidentificationMethod``.
    """
    out: dict[str, MetadataValue] = {}
    for ds in datasets:
        for keyword in DICOM_ALLOWLIST:
            if keyword not in ds:
                continue
            element = ds[keyword]
            if element.tag.is_private:
                continue
            value = _value(keyword, element)
            if value is not None:
                out[keyword] = value
    out["PatientIdentityRemoved"] = "YES"
    out["DeidentificationMethod"] = DEIDENTIFICATION_METHOD
    return out
