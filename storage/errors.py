"""Exceptions raised by the storage package.

Every refusal names what was wrong and what to do; a refused call has changed nothing.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error the storage package raises on purpose."""


class InvalidInputError(StorageError, ValueError):
    """An argument was refused (wrong mask shape, score out of range, unknown verdict, ...)."""


class NotFoundError(StorageError, LookupError):
    """A referenced row (slice, prediction, annotator, model version, job) does not exist."""


class JobLockedError(StorageError):
    """Another fine-tuning job holds the lock."""


class BlobCorruptError(StorageError):
    """A blob's bytes no longer match the hash it is stored under, or the blob is missing."""


class BackupError(StorageError):
    """A backup or restore could not be completed (nothing local was overwritten)."""
