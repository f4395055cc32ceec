"""The LLM observer through the real huggingface_hub client against a local test server."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from adasam.errors import ConfigError
from adasam.imaging import load_slice
from adasam.llm_observer import (
    ANSWER_SCHEMA,
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    AnswerError,
    LlmConfig,
    parse_answer,
    rate_case,
    render_case,
)
from adasam.segex_rubric import RUBRIC_ITEMS, SCORE_LABELS
from adasam.settings import Settings
from tests.llm_server import Reply, fake_llm, good_answer

DICOM = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
PHI = {
    "PatientName": "Zebulon^Quixotic",
    "PatientID": "PID-98765-XQ",
    "PatientBirthDate": "19420817",
    "InstitutionName": "Saint Quirinus Hospital",
    "AccessionNumber": "ACC55501Q",
    "ReferringPhysicianName": "Hieronymus^Bosch",
    "StudyDescription": "Zebulon follow-up",
}


def _case() -> tuple[np.ndarray, np.ndarray]:
    display = np.zeros((40, 50, 3), dtype=np.uint8)
    display[10:30, 12:40] = 120
    mask = np.zeros((40, 50), dtype=bool)
    mask[12:28, 15:38] = True
    return display, mask


def _config(url: str, timeout: float = 5.0) -> LlmConfig:
    return LlmConfig(endpoint=url, model="test-vlm", token="secret-token", timeout_s=timeout)


def test_a_good_rating_end_to_end_through_the_client() -> None:
    display, mask = _case()
    with fake_llm() as server:
        server.script(Reply(good_answer(4)))
        outcome = rate_case(_config(server.url), display, mask, structure="VL", modality="MR")
    assert outcome.failure is None and outcome.rating is not None
    assert outcome.rating.score == 4 and outcome.rating.verdict == "minor_edits"
    assert outcome.attempts == 1 and outcome.latency_ms > 0
    assert outcome.prompt_version == PROMPT_VERSION and outcome.model == "test-vlm"
    assert server.paths == ["/v1/chat/completions"]
    request = json.loads(server.bodies[0])
    assert request["model"] == "test-vlm" and request["temperature"] == 0.0
    # huggingface_hub sends the schema in TGI's form to a self-hosted URL (json_object + value)
    fmt = request["response_format"]
    assert (fmt.get("json_schema") or {}).get("schema", fmt.get("value")) == ANSWER_SCHEMA
    assert request["messages"][0]["content"] == SYSTEM_PROMPT
    assert {k.lower(): v for k, v in server.headers[0].items()}["authorization"] == (
        "Bearer secret-token"
    )
    # the rubric of the human form, word for word
    for label in [*SCORE_LABELS.values(), *RUBRIC_ITEMS]:
        assert label in SYSTEM_PROMPT


@pytest.mark.parametrize(
    ("replies", "reason"),
    [
        ([Reply("not json {"), Reply("still not json")], "invalid answer twice; last: answer is "),
        ([Reply(good_answer(7)), Reply(good_answer(0))], "score 0 is not an integer from 1 to 5"),
        ([Reply(status=429)], "HTTP 429: rate limited"),
        ([Reply(status=500)], "HTTP 500: server error"),
        ([Reply(good_answer(), delay_s=3.0)], "time-out: no answer within 1 s"),
    ],
    ids=["invalid-json", "out-of-range", "http-429", "http-500", "time-out"],
)
def test_bad_answers_are_failures_with_their_reason(replies: list[Reply], reason: str) -> None:
    display, mask = _case()
    with fake_llm() as server:
        server.script(*replies)
        outcome = rate_case(_config(server.url, timeout=1.0), display, mask, structure="VL")
    assert outcome.rating is None
    assert outcome.failure is not None and reason in outcome.failure
    assert len(server.bodies) == (2 if "invalid" in reason or "score" in reason else 1)


def test_an_invalid_answer_is_retried_once() -> None:
    display, mask = _case()
    with fake_llm() as server:
        server.script(Reply("```json\n{}\n```"), Reply("```json\n" + good_answer(2) + "\n```"))
        outcome = rate_case(_config(server.url), display, mask, structure="VM")
    assert outcome.rating is not None and outcome.rating.score == 2 and outcome.attempts == 2


def test_unreachable_endpoint_is_a_clear_failure() -> None:
    display, mask = _case()
    with fake_llm() as server:
        url = server.url
    outcome = rate_case(_config(url), display, mask, structure="VL")
    assert outcome.rating is None and outcome.failure is not None
    assert outcome.failure.startswith(f"cannot reach {url}")


def test_parse_answer_rejects_what_the_schema_forbids() -> None:
    ok = json.loads(good_answer())
    for bad, message in [
        ({**ok, "score": True}, "score True"),
        ({**ok, "score": 3.5}, "score 3.5"),
        ({**ok, "verdict": "maybe"}, "verdict 'maybe'"),
        ({**ok, "rubric": {"completeness": True}}, "rubric must answer exactly"),
        ({**ok, "extra": 1}, "unexpected ['extra']"),
        ([1, 2], "not a JSON object"),
    ]:
        with pytest.raises(AnswerError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse_answer(json.dumps(bad))
    with pytest.raises(AnswerError, match="empty answer"):
        parse_answer("")


def test_nothing_of_the_dicom_header_reaches_the_wire(tmp_path: Path) -> None:
    if not DICOM.is_file():
        pytest.skip("CT_small.dcm is not bundled with this pydicom")
    ds = pydicom.dcmread(DICOM)
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    ds.ImageComments = "Zebulon burned note"
    path = tmp_path / "Zebulon_Quixotic.dcm"
    ds.save_as(path)
    sl = load_slice(path)
    mask = np.zeros(sl.shape, dtype=bool)
    mask[40:80, 40:90] = True
    with fake_llm() as server:
        server.script(Reply(good_answer()))
        outcome = rate_case(
            _config(server.url), sl.display, mask, structure="liver", modality=sl.modality
        )
    assert outcome.rating is not None
    wire = server.wire()
    request = json.loads(server.bodies[0])
    url = request["messages"][1]["content"][1]["image_url"]["url"]
    png = base64.b64decode(url.split(",", 1)[1])
    forbidden = [*PHI.values(), "Zebulon", "Quixotic", "Zebulon_Quixotic.dcm", str(tmp_path)]
    forbidden += [str(getattr(ds, k)) for k in ("SOPInstanceUID", "StudyInstanceUID")]
    for secret in forbidden:
        assert secret.encode() not in wire, secret
        assert secret.encode() not in png, secret
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and not image.info  # no text chunks, no metadata
    assert min(image.size) >= 512


def test_render_case_draws_only_the_outline() -> None:
    display, mask = _case()
    image = np.asarray(Image.open(io.BytesIO(render_case(display, mask))))
    scale = image.shape[0] // 40
    assert image.shape == (40 * scale, 50 * scale, 3)
    centre = image[20 * scale, 26 * scale]
    assert tuple(centre) == (120, 120, 120)  # inside the mask: the slice, untinted
    assert tuple(image[12 * scale, 26 * scale]) == (255, 230, 0)  # the edge: the outline
    with pytest.raises(ValueError, match="does not match"):
        render_case(display, mask[:10])


def test_configuration_is_off_unless_set_and_clear() -> None:
    settings = Settings.from_env({})
    assert not settings.llm_enabled
    with pytest.raises(ConfigError, match="set ADASAM_LLM_ENDPOINT and ADASAM_LLM_MODEL"):
        settings.llm_config()
    hub = Settings.from_env({"ADASAM_LLM_ENDPOINT": "hf:auto", "ADASAM_LLM_MODEL": "m"})
    with pytest.raises(ConfigError, match="need a token: set ADASAM_LLM_TOKEN"):
        hub.llm_config()
    env = {
        "ADASAM_LLM_ENDPOINT": "http://127.0.0.1:9/v1",
        "ADASAM_LLM_MODEL": "m",
        "HF_TOKEN": "s3cr3t-LLM-key",
        "ADASAM_LLM_TIMEOUT": "7",
    }
    configured = Settings.from_env(env)
    config = configured.llm_config()
    assert configured.llm_enabled and config.token == "s3cr3t-LLM-key" and config.timeout_s == 7.0
    assert "s3cr3t" not in repr(configured) and "s3cr3t" not in repr(config)
    with pytest.raises(ConfigError, match="must be an http"):
        LlmConfig(endpoint="ftp://x", model="m")
