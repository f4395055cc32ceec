"""Handlers of the Models tab (no layout here; :mod:`studio.models_view` wires them).

Everyone sees the model versions: lineage (parent), when each was made, its training time,
the gate's held-out scores against its parent (proposal Dice, NoC@90) and whether the gate let
it in (with the reason), and the simulated-session plot of the active version when its bundle
has one (``training/simulate.png``, written by ``python -m adasam simulate --attach``).
Activating a version and rolling back to the active version's parent are for annotators with
the ``admin`` role (``python -m adasam segex role --name N --role admin``); both take effect
at the next prediction (the catalog is bumped, no restart).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

import storage
from storage import ModelVersionRecord
from studio.case_handlers import CaseHandlers
from studio.errors import StudioError, user_errors
from studio.services import Services

VERSION_HEADERS = [
    "id",
    "version",
    "parent",
    "active",
    "created (UTC)",
    "training (s)",
    "corrections",
    "held-out Dice (parent)",
    "held-out NoC@90 (parent)",
    "gate",
]
SIMULATE_PLOT = Path("training") / "simulate.png"


def _score(side: dict[str, Any], key: str) -> str:
    value = side.get(key)
    return "–" if value is None else f"{value:.3f}" if key == "dice" else f"{value:.2f}"


def version_row(v: ModelVersionRecord, names: dict[int, str]) -> list[Any]:
    """One table row: what the gate measured on the held-out corrections, candidate first and
    the parent (then active) version in brackets."""
    m = v.metrics
    gate = m.get("gate") or {}
    cand, act = gate.get("candidate") or {}, gate.get("active") or {}
    training = m.get("training") or {}
    if m.get("root"):
        verdict = "root (the base bundle)"
    elif gate:
        verdict = ("let in: " if gate.get("activate") else "kept out: ") + str(gate.get("reason"))
    else:
        verdict = "–"
    if m.get("pulled_from"):
        verdict += f" [pulled from {m['pulled_from']}]"
    both = cand.get("cases")
    return [
        v.id,
        v.name,
        "–" if v.parent_id is None else names.get(v.parent_id, str(v.parent_id)),
        "yes" if v.is_active else "",
        v.created_at.strftime("%Y-%m-%d %H:%M"),
        training.get("seconds", "–"),
        m.get("train_corrections", "–"),
        f"{_score(cand, 'dice')} ({_score(act, 'dice')})" if both else "–",
        f"{_score(cand, 'noc90')} ({_score(act, 'noc90')})" if both else "–",
        verdict,
    ]


def require_admin(store: storage.Store, name: str) -> None:
    """Raise a StudioError unless ``name`` has the ``admin`` role."""
    if not any(a.name == name and a.role == "admin" for a in storage.list_annotators(store)):
        raise StudioError(
            f"Only an admin may change the active model; {name} is not one (an admin runs "
            f"python -m adasam segex role --name {name} --role admin)."
        )


@dataclass(frozen=True)
class ModelsHandlers:
    """See the module docstring."""

    services: Services
    cases: CaseHandlers

    def _admin(self, typed: str | None, request: gr.Request | None, profile: Any) -> None:
        require_admin(self.services.store, self.cases.annotator(typed, request, profile))

    def _plot(self, active: ModelVersionRecord | None) -> str | None:
        if active is not None:
            path = storage.bundle_path(self.services.store, active.id) / SIMULATE_PLOT
        else:
            choice = self.services.catalog.default()
            path = None if choice is None else Path(choice.path) / SIMULATE_PLOT
        return str(path) if path is not None and path.is_file() else None

    def _summary(self, versions: list[ModelVersionRecord], plot: str | None) -> str:
        active = next((v for v in versions if v.is_active), None)
        served = self.services.catalog.default()
        lines = [
            f"**{len(versions)} model version(s).** Active: "
            + (f"**{active.name}** (id {active.id})" if active else "none (the configured bundle)")
            + (f"; new predictions use {served.label}." if served else ".")
        ]
        if active is not None:
            parent = next((v for v in versions if v.id == active.parent_id), None)
            lines.append(
                f"Roll back re-activates its parent **{parent.name}** (id {parent.id})."
                if parent is not None
                else "It has no parent: to go back, choose a version and activate it."
            )
        if plot is None:
            lines.append(
                "No simulated annotation session is attached to the active version "
                "(`python -m adasam simulate ... --attach` adds its plot here)."
            )
        puller = self.services.puller
        if puller is not None:
            lines.append(f"Model repository: {puller.describe()}.")
        return "\n\n".join(lines)

    @user_errors
    def refresh(self) -> tuple[list[list[Any]], Any, str, Any]:
        """(table rows, version chooser, summary Markdown, the simulated-session plot: shown
        with the active version's ``training/simulate.png``, hidden when it has none)."""
        versions = storage.list_model_versions(self.services.store)
        names = {v.id: v.name for v in versions}
        rows = [version_row(v, names) for v in reversed(versions)]  # newest first
        active = next((v for v in versions if v.is_active), None)
        choices = [(f"{v.id}: {v.name}", v.id) for v in reversed(versions)]
        chooser = gr.update(choices=choices, value=None if active is None else active.id)
        plot = self._plot(active)
        shown = gr.update(value=plot, visible=plot is not None)
        return rows, chooser, self._summary(versions, plot), shown

    @user_errors
    def activate(
        self,
        version_id: int | None,
        typed: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
    ) -> tuple[list[list[Any]], Any, str, Any]:
        """Make the chosen version the active one (admins); the refreshed tab."""
        if version_id is None:
            raise StudioError("Choose a version to activate.")
        self._admin(typed, request, profile)
        storage.activate_model_version(self.services.store, int(version_id))
        self.services.catalog.bump()
        return self.refresh()

    @user_errors
    def rollback(
        self, typed: str | None, request: gr.Request, profile: gr.OAuthProfile | None
    ) -> tuple[list[list[Any]], Any, str, Any]:
        """Re-activate the active version's parent (admins); the refreshed tab."""
        self._admin(typed, request, profile)
        storage.rollback(self.services.store)
        self.services.catalog.bump()
        return self.refresh()
