"""A second de-identification pass over everything storage writes (belt and braces).

The imaging package de-identifies slices before they reach storage. Storage does not rely on
that: :func:`scrub_metadata` drops every metadata key that names a patient, a person, a place,
an institution, an identifier, a UID or a date, and every value that looks like a date or a
DICOM UID, whatever its key. The string values it dropped are then removed from the other text
storage keeps (the source file name), so that ``DOE^JANE`` in the metadata also disappears
from ``doe_jane_ct.dcm``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_DENIED_KEY_PARTS = (
    "patient",
    "name",
    "address",
    "institution",
    "department",
    "physician",
    "operator",
    "accession",
    "uid",
    "date",
    "birth",
    "telephone",
    "phone",
    "email",
    "station",
    "serialnumber",
    "otherpatient",
    "issuer",
    "requesting",
    "referring",
    "performing",
    "admitting",
    "military",
    "ethnic",
    "religious",
    "medicalrecord",
    "insurance",
    "occupation",
    "country",
    "region",
    "comment",
    "studyid",
    "visit",
    "admission",
    "location",
)
"""Lower-cased fragments: a key containing one (ignoring spaces, dashes, underscores) is dropped."""

_KEEP_KEYS = frozenset(
    {
        # Acquisition parameters whose names contain a denied fragment but identify no one.
        "patientposition",
        "patientorientation",
        "patientsex",
        "seriesdescription",
        "studydescription",
        "protocolname",
        "slicelocation",
        "bodypartexamined",
        "patientidentityremoved",
    }
)
"""Normalised keys that are kept although a denied fragment matches them."""

_DENIED_TIME_KEYS = frozenset(
    {
        "studytime",
        "seriestime",
        "acquisitiontime",
        "contenttime",
        "instancecreationtime",
        "timezoneoffsetfromutc",
        "time",
        "timestamp",
        "datetime",
        "acquisitiondatetime",
    }
)
"""Times of day (which with a date identify a visit); EchoTime and RepetitionTime are kept."""

_DATE_VALUE = re.compile(
    r"^\s*(?:(?:19|20)\d{2}[-/.]?(?:0[1-9]|1[0-2])[-/.]?(?:0[1-9]|[12]\d|3[01])"
    r"|(?:0[1-9]|[12]\d|3[01])[-/.](?:0[1-9]|1[0-2])[-/.](?:19|20)\d{2})"
    r"(?:[T\s]?\d{2}:?\d{2}(?::?\d{2}(?:\.\d+)?)?)?\s*$"
)
_UID_VALUE = re.compile(r"^\s*\d+(?:\.\d+){3,}\s*$")
_MIN_ECHO_LENGTH = 3
"""Dropped strings shorter than this are not searched for in other text (too many false hits)."""


@dataclass(frozen=True)
class ScrubResult:
    """Metadata with identifying entries removed, and what was removed."""

    metadata: dict[str, Any]
    dropped_keys: tuple[str, ...]
    dropped_values: tuple[str, ...]


def _normalise(key: str) -> str:
    return re.sub(r"[\s_\-]", "", key).lower()


def is_denied_key(key: str) -> bool:
    """Whether a metadata key may identify a patient, a person, a place or a date."""
    norm = _normalise(key)
    if norm in _KEEP_KEYS:
        return False
    if norm in _DENIED_TIME_KEYS:
        return True
    if norm.endswith("id") or norm.endswith("ids"):
        return True
    return any(part in norm for part in _DENIED_KEY_PARTS)


def is_denied_value(value: object) -> bool:
    """Whether a scalar value looks like a date or a DICOM UID."""
    if isinstance(value, bytes):
        return True  # raw bytes cannot be inspected; never store them
    if not isinstance(value, str):
        return False
    return bool(_DATE_VALUE.match(value) or _UID_VALUE.match(value))


def _string_parts(value: object) -> Iterable[str]:
    if isinstance(value, str):
        text = value.strip()
        if text:
            yield text
            # DICOM person names: FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX.
            for part in re.split(r"[\^,;/\s]+", text):
                if part:
                    yield part
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _string_parts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _string_parts(item)
    elif value is not None and not isinstance(value, bool | int | float):
        yield from _string_parts(str(value))


def _clean(value: Any, path: str, keys: list[str], values: list[str]) -> tuple[bool, Any]:
    """``(keep, cleaned)`` for one value; records what was dropped."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for raw_key, item in value.items():
            key = str(raw_key)
            child = f"{path}.{key}" if path else key
            if is_denied_key(key):
                keys.append(child)
                values.extend(_string_parts(item))
                continue
            keep, cleaned = _clean(item, child, keys, values)
            if keep:
                out[key] = cleaned
        return True, out
    if isinstance(value, list | tuple):
        items = []
        for index, item in enumerate(value):
            keep, cleaned = _clean(item, f"{path}[{index}]", keys, values)
            if keep:
                items.append(cleaned)
        return True, items
    if is_denied_value(value):
        keys.append(path)
        values.extend(_string_parts(value))
        return False, None
    if value is None or isinstance(value, bool | int | float | str):
        if isinstance(value, float) and value != value:  # NaN is not valid JSON
            return True, None
        return True, value
    return True, str(value)


def scrub_metadata(metadata: Mapping[str, Any] | None) -> ScrubResult:
    """Drop identifying keys and date/UID values (recursively); JSON-safe output."""
    keys: list[str] = []
    values: list[str] = []
    _, cleaned = _clean(dict(metadata or {}), "", keys, values)
    unique_values = tuple(dict.fromkeys(v for v in values if v))
    return ScrubResult(metadata=cleaned, dropped_keys=tuple(keys), dropped_values=unique_values)


def scrub_text(text: str, dropped_values: Iterable[str]) -> str:
    """``text`` with every dropped value (case-insensitive, 3+ characters) and any date removed."""
    result = text
    for value in sorted(set(dropped_values), key=len, reverse=True):
        if len(value) >= _MIN_ECHO_LENGTH:
            result = re.sub(re.escape(value), "x", result, flags=re.IGNORECASE)
    result = re.sub(r"(?<!\d)(?:19|20)\d{2}[-_.]?(?:0[1-9]|1[0-2])[-_.]?\d{2}(?!\d)", "x", result)
    return result
