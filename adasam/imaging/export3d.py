"""Label volumes out: NIfTI with the source's affine, and DICOM-SEG referencing the source series.

Label arrays are uint8 ``(D, H, W)`` in the :class:`~adasam.imaging.volume3d.Volume`'s index
order, 0 = background, ``1..n`` = the structures in the order given.

* **NIfTI**: stored x-first as ``(W, H, D)`` (columns, rows, slices) with the volume's affine
  reordered accordingly, so every voxel lies where the source voxel lies (``nibabel`` readers get
  ``labels.transpose(2, 1, 0)``).
* **DICOM-SEG** (``highdicom``): a binary Segmentation with one segment per structure, one frame
  per source slice (empty frames kept), referencing the source series, study and frame of
  reference by the UIDs the :class:`~adasam.imaging.volume3d.SeriesReference` kept in memory.
  The patient and study modules of the SEG are empty: no identifier of the source is copied.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset

from adasam.errors import AdaSamError
from adasam.imaging.volume3d import Volume

_EMPTY_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


class ExportError(AdaSamError, ValueError):
    """A label volume cannot be written in the asked format (what to do is in the message)."""


def label_array(masks: Mapping[str, np.ndarray], order: Sequence[str]) -> np.ndarray:
    """uint8 ``(D, H, W)``: structure ``order[i]`` gets value ``i + 1``.

    Raises:
        ExportError: masks of different shapes, or overlapping structures (labels are
            exclusive).
    """
    shapes = {np.asarray(masks[name]).shape for name in order}
    if len(shapes) != 1:
        raise ExportError(f"the structures' masks have different shapes {sorted(shapes)}")
    out = np.zeros(shapes.pop(), dtype=np.uint8)
    for value, name in enumerate(order, start=1):
        mask = np.asarray(masks[name], dtype=bool)
        if (out[mask] != 0).any():
            raise ExportError(f"{name} overlaps another structure; labels must be exclusive")
        out[mask] = value
    return out


def write_nifti_labels(path: str | os.PathLike[str], labels: np.ndarray, volume: Volume) -> None:
    """Save ``labels`` (uint8 ``(D, H, W)``, the volume's shape) as NIfTI in the source's space."""
    if labels.shape != volume.shape:
        raise ExportError(f"labels {labels.shape} do not match the volume {volume.shape}")
    affine = volume.affine[:, [2, 1, 0, 3]]
    image = nib.Nifti1Image(np.ascontiguousarray(labels.transpose(2, 1, 0), np.uint8), affine)
    image.header.set_xyzt_units(xyz="mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, os.fspath(path))


def _source_stubs(volume: Volume) -> list[Dataset]:
    """One de-identified stand-in per source slice: the UIDs and geometry a SEG needs."""
    ref = volume.reference
    assert ref is not None
    stubs = []
    for k, item in enumerate(ref.slices):
        ds = Dataset()
        ds.SOPClassUID = item.sop_class_uid
        ds.SOPInstanceUID = item.sop_instance_uid
        ds.StudyInstanceUID = ref.study_uid
        ds.SeriesInstanceUID = ref.series_uid
        ds.FrameOfReferenceUID = ref.frame_of_reference_uid
        ds.Modality = ref.modality
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.PixelSpacing = [volume.spacing[1], volume.spacing[2]]
        ds.SliceThickness = volume.spacing[0]
        ds.ImageOrientationPatient = list(ref.orientation)
        ds.ImagePositionPatient = [float(v) for v in ref.positions[k]]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        for keyword in _EMPTY_TYPE2:
            setattr(ds, keyword, "")
        stubs.append(ds)
    return stubs


def write_dicom_seg(
    path: str | os.PathLike[str],
    labels: np.ndarray,
    volume: Volume,
    names: Sequence[str],
    *,
    software_version: str = "adasam",
) -> None:
    """Save ``labels`` as a DICOM Segmentation of the volume's source series.

    Args:
        labels: uint8 ``(D, H, W)``, values ``0..len(names)``.
        volume: a DICOM series volume (``source_format == "dicom-series"``).
        names: structure of each label value ``1..n``.

    Raises:
        ExportError: not a DICOM series source, or labels that do not fit.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if volume.source_format != "dicom-series" or volume.reference is None:
        raise ExportError(
            "DICOM-SEG references a DICOM series, and this volume was not uploaded as one "
            f"({volume.source_format}). Export it as NIfTI instead."
        )
    if labels.shape != volume.shape:
        raise ExportError(f"labels {labels.shape} do not match the volume {volume.shape}")
    if int(labels.max(initial=0)) > len(names):
        raise ExportError(f"labels hold values above {len(names)} (one per structure name)")
    algorithm = hd.AlgorithmIdentificationSequence(
        name="ADA-SAM Studio", version=software_version, family=codes.DCM.ArtificialIntelligence
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i,
            segment_label=name[:64],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
            algorithm_identification=algorithm,
        )
        for i, name in enumerate(names, start=1)
    ]
    seg = hd.seg.Segmentation(
        source_images=_source_stubs(volume),
        pixel_array=np.ascontiguousarray(labels, dtype=np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="ADA-SAM Studio",
        manufacturer_model_name="adasam",
        software_versions=software_version,
        device_serial_number="0",
        omit_empty_frames=False,
    )
    seg.save_as(os.fspath(path))
