"""The Models tab's handlers without a browser: versions with parents, scores, training time
and the gate's verdict; activate / roll back for admins only (the next prediction uses the
change); the active version's simulated-session plot when its bundle has one."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

import storage
from studio.case_handlers import CaseHandlers
from studio.models_handlers import VERSION_HEADERS, ModelsHandlers
from tests.studio.test_handlers import Studio
from tests.studio.test_hot_reload import _run, versioned  # noqa: F401 (fixture)

GATE = {
    "activate": False,
    "reason": "worse: proposal Dice -0.200 on 4 held-out corrections (allowed -0.010)",
    "candidate": {"cases": 4, "dice": 0.61, "noc90": 7.5},
    "active": {"cases": 4, "dice": 0.81, "noc90": 5.25},
}


@pytest.fixture
def tab(versioned, tmp_path: Path):  # noqa: F811
    services, a, b = versioned
    bundle = storage.bundle_path(services.store, a)
    c = storage.register_model_version(
        services.store, name="tiny-C", bundle_dir=bundle, parent_id=a,
        metrics={"gate": GATE, "training": {"seconds": 12.5}, "train_corrections": 9},
    )  # fmt: skip
    storage.ensure_annotator(services.store, "boss", role="admin")
    storage.ensure_annotator(services.store, "dr.b")
    return ModelsHandlers(services, CaseHandlers(services)), services, a, b, c.id


def test_the_table_shows_lineage_scores_time_and_the_gate(tab) -> None:
    handlers, _, a, b, c = tab
    rows, chooser, summary, plot = handlers.refresh()
    assert len(rows[0]) == len(VERSION_HEADERS)
    by_id = {row[0]: dict(zip(VERSION_HEADERS, row, strict=True)) for row in rows}
    assert [row[0] for row in rows] == [c, b, a]  # newest first
    refused = by_id[c]
    assert refused["parent"] == "tiny-A" and refused["active"] == ""
    assert refused["training (s)"] == 12.5 and refused["corrections"] == 9
    assert refused["held-out Dice (parent)"] == "0.610 (0.810)"
    assert refused["held-out NoC@90 (parent)"] == "7.50 (5.25)"
    assert refused["gate"].startswith("kept out: worse")
    assert by_id[a]["active"] == "yes" and "tiny-A" in summary
    assert chooser["value"] == a and (f"{c}: tiny-C", c) in chooser["choices"]
    assert plot["value"] is None and plot["visible"] is False  # no simulated session here
    assert "No simulated annotation session" in summary
    assert "It has no parent" in summary  # A is a root: nothing to roll back to


def test_only_an_admin_activates_and_rolls_back(tab) -> None:
    handlers, services, a, b, _ = tab
    with pytest.raises(gr.Error, match="Only an admin"):
        handlers.activate(b, "dr.b", None, None)
    assert storage.active_model_version(services.store).id == a
    _, chooser, summary, _ = handlers.activate(b, "boss", None, None)
    assert "tiny-B" in summary
    assert storage.active_model_version(services.store).id == b and chooser["value"] == b
    assert _run(Studio(services))[0].model_version == "B"  # the next prediction
    with pytest.raises(gr.Error, match="Only an admin"):
        handlers.rollback("dr.b", None, None)
    with pytest.raises(gr.Error, match="Choose a version"):
        handlers.activate(None, "boss", None, None)
    with pytest.raises(gr.Error, match="no parent"):  # B was registered without one
        handlers.rollback("boss", None, None)
    assert storage.active_model_version(services.store).id == b


def test_rollback_goes_to_the_parent_and_the_plot_shows(tab, tmp_path: Path) -> None:
    handlers, services, a, _, c = tab
    _, _, summary, _ = handlers.activate(c, "boss", None, None)
    assert "Roll back re-activates its parent **tiny-A**" in summary
    assert _run(Studio(services))[0].model_version_id == c
    handlers.rollback("boss", None, None)
    assert storage.active_model_version(services.store).id == a
    plot = storage.bundle_path(services.store, a) / "training" / "simulate.png"
    plot.parent.mkdir(exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(plot)
    _, _, summary, shown = handlers.refresh()
    assert shown["value"] == str(plot) and shown["visible"] is True
    assert "No simulated annotation session" not in summary


def test_the_page_has_the_models_tab(versioned) -> None:  # noqa: F811
    from studio import build_ui

    services, _, _ = versioned
    demo = build_ui(services)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"models-table", "models-choice", "models-activate", "models-rollback"} <= ids
    assert any(isinstance(b, gr.Tab) and b.label == "Models" for b in demo.blocks.values())
    from studio.models_view import COLUMN_WIDTHS

    assert len(COLUMN_WIDTHS) == len(VERSION_HEADERS)  # one width per column, all of the row
    assert sum(float(w.rstrip("%")) for w in COLUMN_WIDTHS) == 100
