"""The page is built for each identity mode, and ``app.py`` refuses bad settings cleanly."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

import app
from studio import build_ui, launch_options
from studio.config import StudioSettings, oauth_available
from studio.services import build_services
from tests.studio.conftest import make_settings


def _blocks_of(demo: gr.Blocks, kind: type) -> list[object]:
    return [b for b in demo.blocks.values() if isinstance(b, kind)]


def _pretend_to_be_a_space(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment a Hugging Face Space with ``hf_oauth: true`` gives the app."""
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "org/adasam-studio")
    for name, value in {
        "OAUTH_CLIENT_ID": "client",
        "OAUTH_CLIENT_SECRET": "secret",
        "OAUTH_SCOPES": "openid profile",
        "OPENID_PROVIDER_URL": "https://huggingface.co",
    }.items():
        monkeypatch.setattr(f"gradio.oauth.{name}", value)


@pytest.mark.parametrize("identity", ["name", "password", "oauth"])
def test_the_page_builds_for_each_identity_mode(
    identity: str, tmp_path: Path, studio_bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if identity == "oauth":
        if not oauth_available():
            # without Gradio's OAuth extra the settings refuse this mode (see test_config)
            pytest.skip("authlib/itsdangerous not installed: the OAuth page cannot be built")
        _pretend_to_be_a_space(monkeypatch)
    users = (("alice", "pw"),) if identity == "password" else ()
    services = build_services(
        make_settings(tmp_path / "data", studio_bundle_dir),
        StudioSettings(identity=identity, users=users, seed_worklist=True),  # type: ignore[arg-type]
    )
    try:
        demo = build_ui(services)
        login_buttons = _blocks_of(demo, gr.LoginButton)
        assert len(login_buttons) == (1 if identity == "oauth" else 0)
        annotator = next(b for b in _blocks_of(demo, gr.Textbox) if b.elem_id == "annotator")
        assert annotator.visible == (identity == "name")
        options = launch_options(services)
        assert options["server_name"] == "127.0.0.1" and options["server_port"] == 7860
        assert options["max_file_size"] == "200mb" and options["show_error"] is False
        assert ("auth" in options) == (identity == "password")
        # first start: the six examples were put in the worklist
        from storage import stats

        assert stats(services.store).slices == len(services.examples) == 6
    finally:
        services.close()


def test_app_refuses_bad_settings_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ADASAM_PORT", "seventy")
    assert app.main() == 2
    err = capsys.readouterr().err
    assert "ADASAM_PORT" in err and "Traceback" not in err


MODEL_HANDLERS = {
    "run",  # the pipeline (button)
    "run_loaded",  # the pipeline after a case loads
    "rerun",  # after a model change
    "refine_ui",  # a click on the canvas
    "predict",  # API
    "refine",  # API
    "on_click",  # volume tab: a click on the axial view
    "on_propagate",  # volume tab
}


def test_every_model_call_goes_through_the_one_queue_with_the_setting(
    tmp_path: Path, studio_bundle_dir: Path
) -> None:
    """ADASAM_MODEL_CONCURRENCY means what it says: every event that calls a model, on every
    tab, is in one concurrency group limited to that many (the predictors take no lock of
    their own: tests/adasam/test_predictor_concurrency.py)."""
    services = build_services(
        make_settings(tmp_path / "data", studio_bundle_dir),
        StudioSettings(identity="name", seed_worklist=False, model_concurrency=3),
    )
    try:
        demo = build_ui(services)
        by_name: dict[str, list[object]] = {}
        for fn in demo.fns.values():
            by_name.setdefault(getattr(fn.fn, "__name__", ""), []).append(fn)
        assert set(by_name) >= MODEL_HANDLERS, MODEL_HANDLERS - set(by_name)
        for name in MODEL_HANDLERS:
            for fn in by_name[name]:
                assert (fn.concurrency_id, fn.concurrency_limit) == ("model", 3), name  # type: ignore[attr-defined]
    finally:
        services.close()
