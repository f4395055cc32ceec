"""The Gradio handler functions, called directly (as Gradio would, without a server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pytest

from storage import stats
from studio.api_handlers import ApiHandlers, split_names
from studio.case_handlers import CaseHandlers
from studio.config import StudioSettings
from studio.editor import ADD_RGB
from studio.errors import user_errors
from studio.review_handlers import ReviewHandlers
from studio.screens import CASE_SCREEN_SLOTS, CLICK_SLOTS, PIPELINE_SLOTS, can_submit, click_screen
from studio.segment_handlers import SegmentHandlers
from studio.services import Services, build_services
from studio.state import CaseState
from tests.studio.conftest import CT_SMALL, THIGH_PNG, make_settings, write_png
from tests.studio.pictures import picture_shape


class Studio:
    """All handler groups over one services object."""

    def __init__(self, services: Services) -> None:
        self.cases = CaseHandlers(services)
        self.segment = SegmentHandlers(services)
        self.review = ReviewHandlers(services, self.cases)
        self.api = ApiHandlers(self.cases, self.segment, self.review)


@pytest.fixture
def studio(services: Services) -> Studio:
    return Studio(services)


def _select(index: Any) -> gr.SelectData:
    return gr.SelectData(None, {"index": index, "value": None, "selected": True})


def _loaded(studio: Studio, path: Path = CT_SMALL) -> CaseState:
    screen = studio.cases.load_upload(str(path), 2, "custom")
    assert set(screen) == set(CASE_SCREEN_SLOTS)
    return screen["state"]


def _ran(studio: Studio, path: Path = CT_SMALL) -> CaseState:
    screen = studio.segment.run(_loaded(studio, path), "custom", ["liver", "kidney"])
    assert set(screen) == set(PIPELINE_SLOTS)
    return screen["state"]


def _message(info: pytest.ExceptionInfo[gr.Error]) -> str:
    return str(info.value.message)


# -- uploads --------------------------------------------------------------------------------
def test_an_upload_shows_the_slice_and_clears_the_pipeline(studio: Studio) -> None:
    screen = studio.cases.load_upload(str(CT_SMALL), 2, "custom")
    state, slice_image, case_md = screen["state"], screen["slice_image"], screen["case_md"]
    assert isinstance(state, CaseState) and state.works == ()
    assert picture_shape(slice_image) == (128, 128, 3) and "CT_small.dcm" in case_md
    assert screen["submit_button"].interactive is False
    assert screen["slice_slider"].label == "Slice 1 of 1" and not screen["slice_slider"].interactive


@pytest.mark.parametrize(
    ("content", "name", "fragment"),
    [
        (CT_SMALL.read_bytes()[:20_000], "corrupt.dcm", "DICOM file is incomplete"),
        (b"patient notes, not an image", "scan.png", "not a readable image"),
    ],
)
def test_bad_uploads_get_a_plain_message(
    studio: Studio, tmp_path: Path, content: bytes, name: str, fragment: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(gr.Error) as info:
        studio.cases.load_upload(str(path), 2, "custom")
    assert fragment in _message(info) and "Traceback" not in _message(info)
    # the app keeps working after the refusal
    assert studio.cases.load_upload(str(CT_SMALL), 2, "custom")["state"] is not None


def test_an_image_over_the_pixel_limit_is_refused(tmp_path: Path, studio_bundle_dir: Path) -> None:
    small = build_services(
        make_settings(tmp_path / "data", studio_bundle_dir, max_pixels=10_000),
        StudioSettings(identity="name", seed_worklist=False),
    )
    try:
        big = write_png(tmp_path / "big.png", np.zeros((200, 200), np.uint8))
        with pytest.raises(gr.Error) as info:
            CaseHandlers(small).load_upload(str(big), 2, "custom")
        assert "the limit is 10,000 pixels" in _message(info)
    finally:
        small.close()


def test_no_file_and_no_case_are_explained(studio: Studio) -> None:
    with pytest.raises(gr.Error, match="Choose a file"):
        studio.cases.load_upload(None, 2, "custom")
    with pytest.raises(gr.Error) as info:
        studio.segment.run(None, "custom", ["liver"])
    assert "Load a case first" in _message(info)


def test_an_unexpected_failure_shows_a_reference_not_a_traceback(caplog: Any) -> None:
    @user_errors
    def broken() -> None:
        raise KeyError("internal detail")

    with pytest.raises(gr.Error) as info:
        broken()
    assert "reference" in _message(info) and "internal detail" not in _message(info)
    assert "internal detail" in caplog.text, "the server log keeps the traceback"


# -- the pipeline ---------------------------------------------------------------------------
def test_run_shows_heatmap_prompts_and_three_candidates(studio: Studio) -> None:
    slot = studio.segment.run(_loaded(studio), "custom", ["liver", "kidney"])
    assert set(slot) == set(PIPELINE_SLOTS)
    assert picture_shape(slot["heatmap"]) == (128, 128, 3) and "p = " in slot["steps_md"]
    gallery = slot["gallery"]["value"]
    assert len(gallery) == 3 and slot["gallery"]["selected_index"] == 0
    # each picture a PNG file named by its content, written once (studio.picture_files)
    assert len({Path(p).name for p in gallery}) == 3
    assert [picture_shape(p) for p in gallery] == [(128, 128, 3)] * 3
    assert "#1: score" in slot["candidates_md"] and "chosen" in slot["candidates_md"]
    # the canvas: a 128 px slice sent 8x larger (1024 px), each pixel an 8x8 block
    assert picture_shape(slot["correction"]) == (1024, 1024, 3)
    assert slot["submit_button"].interactive is True
    assert slot["structure_radio"].visible and "Time per stage" in slot["timings_md"]


def test_a_click_on_the_image_refines_and_returns_only_the_click_slots(studio: Studio) -> None:
    state = _ran(studio)
    slot = studio.segment.refine_ui(state, "Add (+)", _select([8 * 64 + 7, 8 * 40]))
    assert set(slot) <= set(CLICK_SLOTS)
    work = slot["state"].work
    assert len(work.clicks) == 1 and "1 refinement click" in slot["correction_status"]
    assert (work.clicks[0].x, work.clicks[0].y) == (64, 40), "canvas pixels map to the slice"
    assert "refined in" in slot["correction_status"]
    assert "gallery" not in slot, "the candidates did not change, so they are not sent"
    assert "submit_button" not in slot, "it could be pressed before and still can"


def test_the_submit_button_is_sent_only_when_a_click_changes_it(studio: Studio) -> None:
    """An update of a button makes Gradio rebuild its config (a pydantic schema) on every
    click, so the click slots carry it only when its state changes."""
    state = _ran(studio)
    assert can_submit(state)
    assert "submit_button" not in click_screen(state, False, could_submit=True)
    became = click_screen(state, False, could_submit=False)  # e.g. a box drawn: the first mask
    assert became["submit_button"].interactive is True
    assert click_screen(state, False)["submit_button"].interactive is True  # before: unknown


def test_gallery_selection_structure_switch_undo_and_reset(studio: Studio) -> None:
    state = _ran(studio)
    state = studio.segment.choose_candidate_ui(state, _select(2))["state"]
    assert state.work.chosen == 2
    state = studio.segment.select_structure(state, "kidney")["state"]
    assert state.active == "kidney"
    state = studio.segment.select_structure(state, "liver")["state"]
    state = studio.segment.undo(state)["state"]
    assert state.work.chosen == 0
    with pytest.raises(gr.Error, match="Nothing to undo"):
        studio.segment.undo(state)
    with pytest.raises(gr.Error):
        studio.segment.select_structure(state, "spleen")


# -- brush and submission -------------------------------------------------------------------
def test_brush_strokes_count_at_submission_even_if_not_applied(studio: Studio) -> None:
    state = _ran(studio)
    opened = studio.review.open_editor(state)
    state, value, hint = opened["state"], opened["editor"], opened["brush_md"]
    assert value["background"].shape == (128, 128, 4) and "blue" in hint
    layer = np.zeros((128, 128, 4), np.uint8)
    layer[0:4, 0:4] = (*ADD_RGB, 200)
    editor = {"background": value["background"], "layers": [layer], "composite": None}
    screen = studio.review.submit(
        state,
        "dr.b",
        "5 · Excellent: clinically usable as is",
        "Accept",
        [],
        "",
        editor,
        {},
        gr.Request(),
        None,
    )
    new, browser = screen["state"], screen["browser"]
    assert new.work.brushed is not None and new.work.brushed[0:4, 0:4].all()
    assert "Saved" in browser["receipt"] and browser["annotator"] == "dr.b"
    assert len(screen["downloads"]) == 3


def test_submitting_a_wrecked_mask_warns_first_and_stores_on_the_second_press(
    studio: Studio, services: Services
) -> None:
    from studio.editor import REMOVE_RGB

    state = _ran(studio)
    opened = studio.review.open_editor(state)
    state, value = opened["state"], opened["editor"]
    layer = np.zeros((128, 128, 4), np.uint8)
    # paint the whole slice: red (final empty) over a mask, blue (final full) over none
    wipe = state.work.original.mask.any()
    layer[...] = (*(REMOVE_RGB if wipe else ADD_RGB), 255)
    editor = {"background": value["background"], "layers": [layer], "composite": None}
    args = ("dr.b", "2 · Poor: redrawing is faster than correcting", "Reject", [], "", editor, {})
    first = studio.review.submit(state, *args, gr.Request(), None)
    assert "differs sharply" in first["confirmation"]
    assert "downloads" not in first and "browser" not in first, "left as they are"
    assert stats(services.store).corrections == 0, "nothing stored on the first press"
    second = studio.review.submit(first["state"], *args, gr.Request(), None)
    assert "Saved" in second["confirmation"]
    assert stats(services.store).corrections == 1


def _editor_payload(tmp_path: Path, background: np.ndarray, layer: np.ndarray) -> Any:
    """What the browser sends for the brush editor (Gradio's ``EditorData``: PNG files), read
    by the page's own ``gr.ImageEditor`` exactly as Gradio reads it before calling a handler."""
    from gradio.components.image_editor import EditorData
    from gradio.data_classes import FileData
    from PIL import Image

    Image.fromarray(background).save(tmp_path / "background.png")
    Image.fromarray(layer).save(tmp_path / "layer.png")
    return EditorData(
        background=FileData(path=str(tmp_path / "background.png")),
        layers=[FileData(path=str(tmp_path / "layer.png"))],
        composite=None,
    )


def _submit_confirmed(studio: Studio, state: CaseState, editor: Any) -> dict[str, Any]:
    """Submit (a second press when the mask is far from the candidate); the screen."""
    args = ("dr.b", "4 · Good: minor edits only", "Minor edits", [], "", editor, {})
    screen = studio.review.submit(state, *args, gr.Request(), None)
    if "Saved" not in screen["confirmation"]:
        screen = studio.review.submit(screen["state"], *args, gr.Request(), None)
    assert "Saved" in screen["confirmation"]
    return screen


def test_a_stroke_sent_as_the_browser_sends_it_is_in_the_submitted_mask(
    studio: Studio, services: Services, tmp_path: Path
) -> None:
    """The stroke's way from the page's editor component to the stored mask, unapplied, in
    the value shape of the installed Gradio (layer at the editor's own, doubled size)."""
    from storage import load_correction_masks
    from studio.layout import build_page

    editor = build_page(services)[1]["editor"]
    state = _ran(studio)
    opened = studio.review.open_editor(state)
    state = opened["state"]
    before = state.work.mask.copy()
    layer = np.zeros((256, 256, 4), np.uint8)  # the editor returns its layer at 2x here
    layer[120:136, 40:200] = (*ADD_RGB, 153)  # the brush's 60 % opacity
    value = editor.preprocess(_editor_payload(tmp_path, opened["editor"]["background"], layer))
    screen = _submit_confirmed(studio, state, value)
    stored = load_correction_masks(services.store, 1).final
    expected = before.copy()
    expected[60:68, 20:100] = True  # the stroke, at the slice's size
    np.testing.assert_array_equal(stored, expected)
    # the downloads after the submission are of that same mask (the editor shows it now)
    assert len(studio.review.downloads(screen["state"], value)["downloads"]) == 3


def test_strokes_painted_on_an_earlier_mask_are_refused_not_dropped(studio: Studio) -> None:
    """Paint, then click on the canvas (the mask changes): the strokes in the editor belong to
    the earlier mask; submitting says so instead of silently storing the mask without them."""
    state = _ran(studio)
    opened = studio.review.open_editor(state)
    state = opened["state"]
    layer = np.zeros((128, 128, 4), np.uint8)
    layer[60:68, 20:100] = (*ADD_RGB, 200)
    editor = {"background": opened["editor"]["background"], "layers": [layer], "composite": None}
    state = studio.segment.refine_ui(state, "Add (+)", _select([8 * 64 + 7, 8 * 40]))["state"]
    args = ("dr.b", "4 · Good: minor edits only", "Minor edits", [], "", editor, {})
    with pytest.raises(gr.Error) as info:
        studio.review.submit(state, *args, gr.Request(), None)
    assert "earlier mask of liver" in _message(info) and "reopen the 'Brush' panel" in (
        _message(info)
    )
    with pytest.raises(gr.Error, match="earlier mask"):
        studio.review.downloads(state, editor)
    # reopened: the editor shows the current mask, and an empty editor submits as it is
    state = studio.review.open_editor(state)["state"]
    empty = {**editor, "layers": [np.zeros((128, 128, 4), np.uint8)]}
    _submit_confirmed(studio, state, empty)


def test_apply_brush_needs_the_editor_to_show_the_current_mask(studio: Studio) -> None:
    state = _ran(studio)
    with pytest.raises(gr.Error, match="older mask"):
        studio.review.apply_brush(state, {"layers": []})
    state = studio.review.open_editor(state)["state"]
    out = studio.review.apply_brush(state, {"layers": []})
    assert out["state"].work is state.work, "no stroke, no edit"


def test_submit_without_a_name_or_a_score_explains_what_is_missing(studio: Studio) -> None:
    state = _ran(studio)
    args = ("Accept", [], "", None, {}, gr.Request(), None)
    with pytest.raises(gr.Error, match="SegEx score"):
        studio.review.submit(state, "dr.b", None, *args)
    with pytest.raises(gr.Error, match="Annotator"):
        studio.review.submit(state, " ", "4 · Good: minor edits only", *args)


def test_password_mode_takes_the_logged_in_user(tmp_path: Path, studio_bundle_dir: Path) -> None:
    built = build_services(
        make_settings(tmp_path / "data", studio_bundle_dir),
        StudioSettings(identity="password", users=(("carol", "pw"),), seed_worklist=False),
    )
    try:
        studio = Studio(built)
        state = _ran(studio)
        screen = studio.review.submit(
            state,
            "ignored",
            3,
            "Major edits",
            [],
            "",
            None,
            {},
            gr.Request(username="carol"),
            None,
        )
        assert "by carol" in screen["confirmation"]
    finally:
        built.close()


# -- worklist -------------------------------------------------------------------------------
def test_two_annotators_never_get_the_same_worklist_case(studio: Studio) -> None:
    added = studio.cases.import_batch([str(CT_SMALL), str(THIGH_PNG)])["batch_md"]
    assert "2 case(s) added" in added
    a = studio.cases.next_case("ann", "custom", None, gr.Request(), None)
    b = studio.cases.next_case("bob", "custom", None, gr.Request(), None)
    assert a["state"].source.kind == b["state"].source.kind == "worklist"
    assert a["state"].source.worklist_hash != b["state"].source.worklist_hash
    assert "reserved for ann" in a["worklist_md"] and a["state"].owner == "ann"


def test_an_empty_worklist_says_so(studio: Studio) -> None:
    out = studio.cases.next_case("ann", "custom", None, gr.Request(), None)
    assert out == {"worklist_md": "Worklist: no case left for you."}


def test_examples_can_be_added_to_the_worklist(studio: Studio, services: Services) -> None:
    message = studio.cases.import_examples()["batch_md"]
    assert f"{len(services.examples)} case(s) added" in message
    assert stats(services.store).slices == len(services.examples) == 6


# -- the API handlers -----------------------------------------------------------------------
def test_api_predict_refine_submit(studio: Studio, services: Services) -> None:
    out = studio.api.predict(str(CT_SMALL), "", "liver", -1, "")
    state, result = out["state"], out["api_json"]
    heatmap, prompts, candidates = out["api_heatmap"], out["api_prompts"], out["api_candidates"]
    assert [s["name"] for s in result["structures"]] == ["liver"]
    assert heatmap.shape == prompts.shape == (128, 128, 3) and len(candidates) == 3
    assert candidates[0][1].startswith("#1 · score")
    out = studio.api.refine(state, 40, 50, "add")
    state, result = out["state"], out["api_json"]
    assert result["structures"][0]["clicks"] == [[40.0, 50.0, 1]]
    submitted = studio.api.submit(
        state,
        "api-user",
        4,
        "minor_edits",
        "completeness, boundary_accuracy",
        "",
        gr.Request(),
        None,
    )
    info, files = submitted["api_json"], submitted["api_files"]
    assert info["annotator"] == "api-user" and len(files) == 3
    assert len(studio.api.download(submitted["state"])["api_files"]) == 3
    assert stats(services.store).ratings == 1
    assert split_names(" a, ,b ") == ["a", "b"]


def test_api_window_and_slice_options(studio: Studio) -> None:
    state = studio.api.predict(str(CT_SMALL), "custom", "", -1, "ct-bone")["state"]
    assert state.slice.window.name == "ct-bone"
    with pytest.raises(gr.Error, match="window"):
        studio.api.predict(str(CT_SMALL), "custom", "", -1, "ct-sunset")


def test_page_load_restores_the_receipt_and_never_overwrites_a_typed_name(studio: Studio) -> None:
    assert studio.review.restore({}, "", None, gr.Request(), None) == {}
    kept = {"receipt": "Saved liver", "annotator": "dr.k"}
    out = studio.review.restore(kept, "", None, gr.Request(), None)
    assert out == {"confirmation": "Before the page was reloaded: Saved liver", "annotator": "dr.k"}
    typing = studio.review.restore(kept, "someone typing", None, gr.Request(), None)
    assert "annotator" not in typing


def _nifti_volume(path: Path, depth: int = 7) -> Path:
    import nibabel as nib

    rng = np.random.default_rng(0)
    volume = rng.normal(100.0, 20.0, (48, 40, depth)).astype(np.float32)
    volume[:, :, depth // 2] += 200.0  # one brighter slice (the middle one)
    nib.save(nib.Nifti1Image(volume, np.diag([0.8, 0.8, 3.0, 1.0])), str(path))
    return path


def test_a_single_slice_gets_no_slider_and_a_volume_gets_one_from_1_to_its_depth(
    studio: Studio, tmp_path: Path
) -> None:
    single = studio.cases.load_upload(str(CT_SMALL), 2, "custom")
    slider, number = single["slice_slider"], single["slice_number"]
    assert slider.visible is False, "one slice: no 1..2 slider"
    assert (number.value, number.interactive) == (1, False), "a read-only 1 of 1"
    two = studio.cases.load_upload(str(_nifti_volume(tmp_path / "two.nii.gz", 2)), 2, "custom")
    slider = two["slice_slider"]
    assert slider.visible is True, "shown again after a single slice hid it"
    assert (slider.minimum, slider.maximum, slider.interactive) == (1, 2, True)
    again = studio.cases.load_upload(str(CT_SMALL), 2, "custom")["slice_slider"]
    assert again.visible is False


def test_a_volume_gets_a_slice_slider_and_another_slice_can_be_chosen(
    studio: Studio, tmp_path: Path
) -> None:
    volume = _nifti_volume(tmp_path / "knee.nii.gz")
    slot = studio.cases.load_upload(str(volume), 2, "custom")
    state = slot["state"]
    assert state.slice.num_slices == 7 and state.slice.slice_index == 3, "the middle slice"
    slider = slot["slice_slider"]
    assert slider.interactive and slider.visible
    assert (slider.minimum, slider.maximum, slider.value) == (1, 7, 4)
    assert slider.label == "Slice 4 of 7" and slot["slice_number"].value == 4, "1-based"
    assert slot["axis"].visible
    other = studio.cases.go_to_slice(state, 6)["state"]  # typed or slid: slice 6 = index 5
    assert other.slice.slice_index == 5 and other.source == state.source
    assert other.token != state.token, "a new slice is a new case"
    assert studio.cases.next_slice(other)["state"].slice.slice_index == 6
    assert (
        studio.cases.next_slice(studio.cases.next_slice(other)["state"])["slice_number"].value == 7
    )
    assert studio.cases.previous_slice(other)["state"].slice.slice_index == 4
    sagittal = studio.cases.change_axis(other, 0)["state"]
    assert sagittal.slice.axis == 0 and sagittal.slice.slice_index == sagittal.slice.num_slices // 2
    with pytest.raises(gr.Error, match="from 1 to 7"):
        studio.cases.go_to_slice(state, 8)
    with pytest.raises(gr.Error, match="from 1 to 7"):
        studio.cases.go_to_slice(state, 0)


def test_window_presets_level_width_and_the_files_own_window(studio: Studio) -> None:
    state = _loaded(studio)
    assert state.slice.window.name == "ct-abdomen"
    bone = studio.cases.change_window(state, "ct-bone", None, None)
    assert bone["state"].slice.window.name == "ct-bone" and bone["window"] == "ct-bone"
    custom = studio.cases.change_window_custom(state, 50, 300)["state"]
    assert (custom.slice.window.level, custom.slice.window.width) == (50.0, 300.0)
    back = studio.cases.change_window(custom, "file default", None, None)["state"]
    assert np.array_equal(back.slice.display, state.slice.display)
    with pytest.raises(gr.Error, match="width"):
        studio.cases.change_window_custom(state, 50, -1)
    with pytest.raises(gr.Error, match="level and width"):
        studio.cases.change_window(state, "custom (level/width)", None, None)


def test_a_display_window_change_keeps_the_pipeline_result_and_the_clicks(
    studio: Studio,
) -> None:
    state, _ = studio.segment.refine_state(_ran(studio), 30, 30, "add")
    lung = studio.cases.change_window(state, "ct-lung", None, None)
    shown = lung["state"]
    assert shown.slice.window.name == "ct-lung" and shown.token == state.token
    assert shown.works == state.works and shown.work.all_clicks == state.work.all_clicks
    assert "1 refinement click" in lung["correction_status"]
    assert np.array_equal(shown.model_input, state.model_input)


def test_the_worklist_walks_each_annotator_through_every_case_once(
    studio: Studio, services: Services
) -> None:
    studio.cases.import_examples()
    seen: dict[str, list[str]] = {}
    for who in ("ann", "bob"):
        state = None
        for _ in range(6):
            out = studio.cases.next_case(who, "custom", state, gr.Request(), None)
            state = out["state"]
            seen.setdefault(who, []).append(state.source.worklist_hash)
        assert len(set(seen[who])) == 6, "six presses, six different cases"
        # a seventh press wraps around to the first case (none was submitted)
        again = studio.cases.next_case(who, "custom", state, gr.Request(), None)["state"]
        assert again.source.worklist_hash == seen[who][0]
        from storage import release_case

        release_case(services.store, who, again.source.worklist_hash)
    assert seen["ann"] != seen["bob"], "each annotator has an order of their own"


def test_a_worklist_case_gets_the_model_its_modality_needs(
    studio: Studio, services: Services
) -> None:
    keys = {c.key: c.modality for c in services.catalog.choices()}
    assert keys["liver-ct"] == "CT" and keys["thigh-mri"] == "MR"
    studio.cases.import_examples()
    by_hash = {e.content_hash: e.model for e in services.examples}
    state, model = None, "thigh-mri"
    for _ in range(6):
        out = studio.cases.next_case("ann", model, state, gr.Request(), None)
        state = out["state"]
        needed = by_hash[state.source.worklist_hash]
        model = out["model"].value if "model" in out else model
        assert model == needed, state.source.name


def test_a_reload_restores_the_annotators_case_and_edits(
    studio: Studio, services: Services
) -> None:
    studio.cases.import_batch([str(CT_SMALL)])
    state = studio.cases.next_case("ann", "custom", None, gr.Request(), None)["state"]
    ran = studio.segment.run(state, "custom", ["liver"])["state"]
    clicked = studio.segment.refine(ran, 40, 50, "add")["state"]
    services.drafts.keep(clicked)  # what the page's wiring does with every new state
    restored = studio.review.restore({"annotator": "ann"}, "", None, gr.Request(), None)
    assert restored["state"] is clicked and restored["annotator"] == "ann"
    assert len(restored["state"].work.clicks) == 1 and "slice_image" in restored
    bob = studio.review.restore({"annotator": "bob"}, "", None, gr.Request(), None)
    assert bob.get("state") is None


def test_a_case_opened_right_after_the_page_appeared_is_not_replaced_by_the_draft(
    studio: Studio, services: Services
) -> None:
    """The page-load restore runs a moment after the page appears: an example opened in that
    moment is newer than the annotator's draft and stays on screen (CI saw the draft win)."""
    studio.cases.import_batch([str(CT_SMALL)])
    draft = studio.cases.next_case("ann", "custom", None, gr.Request(), None)["state"]
    services.drafts.keep(draft)
    opened = studio.cases.load_upload(str(CT_SMALL), 2, "custom")["state"]
    out = studio.review.restore({"annotator": "ann"}, "", opened, gr.Request(), None)
    assert "state" not in out and "slice_image" not in out, "the opened case stays"
    assert "was not restored" in out["confirmation"]
    assert draft.slice.source_name in out["confirmation"]
    # the draft itself on screen (the page had restored it already): nothing to say
    assert studio.review.restore({"annotator": "ann"}, "", draft, gr.Request(), None) == {
        "annotator": "ann"
    }
