"""Write a phantom volume as a DICOM series (one CT or MR Image Storage file per slice).

For trying the studio's volume upload and for tests; the files carry no identifying value
unless the caller adds some through ``extra`` (tests do, to check de-identification).
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

_SOP_CLASS = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}


def _base(modality: str, study: str, series: str, frame_of_reference: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = _SOP_CLASS[modality]
    ds.Modality = modality
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = frame_of_reference
    ds.PatientName = "Phantom^Anonymous"
    ds.PatientID = "PHANTOM"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyDate = "20260101"
    ds.StudyTime = "000000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.Manufacturer = "adasam.phantoms"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def volume_to_dicom_series(
    image: np.ndarray,
    spacing: tuple[float, float, float],
    modality: str,
    *,
    origin: tuple[float, float, float] = (-100.0, -100.0, 0.0),
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    extra: Mapping[str, object] | None = None,
    series_uid: str | None = None,
) -> list[bytes]:
    """One DICOM file (bytes) per slice of ``image``.

    Args:
        image: float32 ``(D, H, W)`` in HU (CT) or a.u. (MR); stored as int16 with
            RescaleSlope 1 (CT, RescaleIntercept 0) or scaled by 4 (MR, slope 0.25).
        spacing: ``(slice, row, col)`` mm.
        modality: ``"CT"`` or ``"MR"``.
        origin: ImagePositionPatient of slice 0 (LPS mm); slice ``k`` lies ``k * spacing[0]``
            further along the normal ``row direction × column direction``.
        orientation: ImageOrientationPatient (row direction, then column direction).
        extra: attributes set on every file (keyword → value), e.g. a patient's name.
        series_uid: the SeriesInstanceUID (default: a new one).

    Returns:
        Bytes of each file, slice 0 first.
    """
    if modality not in _SOP_CLASS:
        raise ValueError(f"modality must be CT or MR, got {modality!r}")
    vol = np.asarray(image, dtype=np.float32)
    if vol.ndim != 3:
        raise ValueError(f"image must be (D, H, W), got {vol.shape}")
    study, series, frame_ref = generate_uid(), series_uid or generate_uid(), generate_uid()
    iop = np.asarray(orientation, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    slope = 1.0 if modality == "CT" else 0.25
    out = []
    for k in range(vol.shape[0]):
        ds = _base(modality, study, series, frame_ref)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [float(v) for v in iop]
        pos = np.asarray(origin, dtype=np.float64) + k * spacing[0] * normal
        ds.ImagePositionPatient = [round(float(v), 6) for v in pos]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[2])]
        ds.SliceThickness = float(spacing[0])
        ds.Rows, ds.Columns = int(vol.shape[1]), int(vol.shape[2])
        ds.RescaleSlope, ds.RescaleIntercept = slope, 0
        if modality == "CT":
            ds.RescaleType = "HU"
        stored = np.clip(np.rint(vol[k] / slope), -32768, 32767).astype(np.int16)
        ds.PixelData = stored.tobytes()
        for keyword, value in (extra or {}).items():
            setattr(ds, keyword, value)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out
