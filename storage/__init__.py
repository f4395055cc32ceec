"""Persistence for ADA-SAM Studio: slices, predictions, corrections, SegEx ratings, models.

Torch-free. Open a :class:`Store` with :func:`open_store` (which upgrades the schema), then call
the repository functions below; they are the only way other packages touch the database. Each
runs in its own transaction and returns frozen records.

    store = open_store(settings.database_url, settings.data_dir)
    ensure_annotator(store, "dr.rossi")
    s = record_slice(store, content_hash=..., pixels=..., display=..., modality="MR")
    p = record_prediction(store, slice_hash=s.content_hash, structure="VL", candidates=[...],
                          scores=[...])
    c = record_correction(store, prediction_id=p.id, chosen_rank=0, final_mask=m,
                          annotator="dr.rossi", seconds=41.0, clicks=3)
    record_rating(store, observer=HumanObserver("dr.rossi"), correction_id=c.id, score=4,
                  verdict="minor_edits")
"""

from storage.annotators import ensure_annotator, list_annotators, set_role
from storage.corrections import (
    CorrectionMasks,
    get_correction,
    load_correction_masks,
    record_correction,
)
from storage.errors import (
    BackupError,
    BlobCorruptError,
    InvalidInputError,
    JobLockedError,
    NotFoundError,
    StorageError,
)
from storage.jobs import acquire_job_lock, finish_job, get_job, heartbeat_job, list_jobs
from storage.model_versions import (
    activate_model_version,
    active_model_version,
    bundle_path,
    get_model_version,
    list_model_versions,
    register_model_version,
    rollback,
)
from storage.models import SEGEX_MAX, SEGEX_MIN, VERDICTS
from storage.predictions import get_prediction, load_candidate_mask, record_prediction
from storage.ratings import (
    HumanObserver,
    LlmObserver,
    rating_history,
    ratings_of,
    record_rating,
    revise_rating,
)
from storage.records import (
    AnnotatorRecord,
    CandidateRecord,
    CorrectionRecord,
    FinalMask,
    JobRecord,
    LlmFailureRecord,
    ModelVersionRecord,
    PredictionRecord,
    RatingRecord,
    SegexRow,
    SliceRecord,
    StorageStats,
    StudyCaseRecord,
    StudyRecord,
    TrainingExample,
)
from storage.segex import (
    candidate_context,
    llm_failures,
    llm_rated_candidates,
    record_llm_failure,
    segex_rows,
)
from storage.slices import get_slice, load_display, load_pixels, pixels_hash, record_slice
from storage.stats import stats
from storage.store import Store, open_store
from storage.studies import (
    corrected_candidates,
    create_study,
    get_study,
    list_studies,
    next_study_case,
    record_study_rating,
    study_case_ids,
    study_ratings,
)
from storage.training import correction_verdicts, final_masks, training_examples_since
from storage.volumes import (
    VolumeCaseRecord,
    VolumeSliceRecord,
    get_volume_case,
    label_volume,
    list_volume_cases,
    record_volume_case,
    record_volume_slice,
    volume_slices,
)
from storage.worklist import lease_holders, next_case, release_case, walk_case, walk_left

__all__ = [
    "SEGEX_MAX",
    "SEGEX_MIN",
    "VERDICTS",
    "AnnotatorRecord",
    "BackupError",
    "BlobCorruptError",
    "CandidateRecord",
    "CorrectionMasks",
    "CorrectionRecord",
    "FinalMask",
    "HumanObserver",
    "InvalidInputError",
    "JobLockedError",
    "JobRecord",
    "LlmFailureRecord",
    "LlmObserver",
    "ModelVersionRecord",
    "NotFoundError",
    "PredictionRecord",
    "RatingRecord",
    "SegexRow",
    "SliceRecord",
    "StorageError",
    "StorageStats",
    "Store",
    "StudyCaseRecord",
    "StudyRecord",
    "TrainingExample",
    "VolumeCaseRecord",
    "VolumeSliceRecord",
    "acquire_job_lock",
    "activate_model_version",
    "active_model_version",
    "bundle_path",
    "candidate_context",
    "corrected_candidates",
    "correction_verdicts",
    "create_study",
    "ensure_annotator",
    "final_masks",
    "finish_job",
    "get_correction",
    "get_job",
    "get_model_version",
    "get_prediction",
    "get_slice",
    "get_study",
    "get_volume_case",
    "heartbeat_job",
    "label_volume",
    "lease_holders",
    "list_annotators",
    "list_jobs",
    "list_model_versions",
    "list_studies",
    "list_volume_cases",
    "llm_failures",
    "llm_rated_candidates",
    "load_candidate_mask",
    "load_correction_masks",
    "load_display",
    "load_pixels",
    "next_case",
    "next_study_case",
    "open_store",
    "pixels_hash",
    "rating_history",
    "ratings_of",
    "record_correction",
    "record_llm_failure",
    "record_prediction",
    "record_rating",
    "record_slice",
    "record_study_rating",
    "record_volume_case",
    "record_volume_slice",
    "register_model_version",
    "release_case",
    "revise_rating",
    "rollback",
    "segex_rows",
    "set_role",
    "stats",
    "study_case_ids",
    "study_ratings",
    "training_examples_since",
    "volume_slices",
    "walk_case",
    "walk_left",
]
