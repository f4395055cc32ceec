"""``gradio_client`` against the studio served in-process: predict → refine → submit."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client, handle_file

from storage import get_correction, ratings_of, stats
from studio import build_ui, launch_options
from studio.services import Services
from tests.studio.conftest import CT_SMALL

pytestmark = pytest.mark.slow

API_NAMES = {
    "/predict",
    "/choose_candidate",
    "/refine",
    "/undo",
    "/reset",
    "/submit",
    "/download",
    "/statistics",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(services: Services) -> tuple[Any, str]:
    """The studio of ``services`` served on a free local port: (demo, url); close the demo."""
    demo = build_ui(services)
    demo.queue(default_concurrency_limit=4)
    options = launch_options(services)
    options.update(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    _, url, _ = demo.launch(**options)
    return demo, url


@pytest.fixture
def client(services: Services) -> Iterator[Client]:
    demo, url = serve(services)
    try:
        yield Client(url, verbose=False, download_files=False)
    finally:
        demo.close()


def test_the_documented_api_names_are_public(client: Client) -> None:
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert endpoints == API_NAMES


def test_predict_refine_submit_over_http(client: Client, services: Services) -> None:
    result, heatmap, prompts, candidates = client.predict(
        handle_file(str(CT_SMALL)), "custom", "liver,kidney", -1, "", api_name="/predict"
    )
    assert [s["name"] for s in result["structures"]] == ["liver", "kidney"]
    assert all(len(s["candidates"]) == 3 for s in result["structures"])
    assert heatmap and prompts and len(candidates) == 3
    result, _ = client.predict(1, api_name="/choose_candidate")
    assert result["structures"][0]["chosen"] == 1
    result, image = client.predict(64, 64, "add", api_name="/refine")
    assert result["structures"][0]["clicks"] == [[64.0, 64.0, 1]] and image
    result, _ = client.predict(30, 30, "remove", api_name="/refine")
    result, _ = client.predict(api_name="/undo")
    assert len(result["structures"][0]["clicks"]) == 1
    receipt, files = client.predict(
        "client-user",
        2,
        "major_edits",
        "anatomical_plausibility",
        "via API",
        api_name="/submit",
    )
    assert receipt["annotator"] == "client-user" and len(files) == 3
    correction = get_correction(services.store, receipt["correction_id"])
    assert correction.clicks == 1 and correction.annotator == "client-user"
    (rating,) = ratings_of(services.store, candidate_id=correction.candidate_id)
    assert rating.verdict == "major_edits" and rating.comment == "via API"
    # the same submission again stores nothing
    again, _ = client.predict("client-user", 2, "major_edits", "", "", api_name="/submit")
    assert again == receipt and stats(services.store).corrections == 1
    summary, _plot = client.predict(api_name="/statistics")
    assert "1 of 1 stored slices" in summary
    print("\n/predict result:", json.dumps(result)[:200])


def test_api_errors_are_plain_messages(client: Client, tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(Exception) as info:
        client.predict(handle_file(str(text)), "custom", "", -1, "", api_name="/predict")
    assert "not a readable image" in str(info.value)
    with pytest.raises(Exception) as info:
        client.predict(10, 10, "add", api_name="/refine")
    assert "Load a case first" in str(info.value)
