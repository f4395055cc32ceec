"""Exception types shared across the ML core.

Every error a user can cause (bad upload, bad bundle, bad argument) is one of these, with a
message written for the person who caused it: what went wrong and what to do about it.
"""

from __future__ import annotations


class AdaSamError(Exception):
    """Base class of the errors a user can act on."""


class IngestError(AdaSamError, ValueError):
    """An uploaded file could not be turned into a slice (corrupt, empty, wrong kind, too big)."""


class BundleError(AdaSamError):
    """A model bundle is missing, incomplete or inconsistent."""


class ConfigError(AdaSamError, ValueError):
    """A configuration value is invalid."""


class TimeBudgetError(AdaSamError):
    """A request ran past its time budget and was stopped before its next step."""
