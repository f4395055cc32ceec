"""The SegEx LLM/VLM observer: a vision-language model rates a mask with the human rubric.

The request holds only pixels and the rubric: the windowed display slice (de-identified pixels,
re-encoded as a PNG without metadata) with the mask drawn as an outline, the structure's name
and the modality. Never a DICOM header, a file name or any other identifier.

It speaks the OpenAI-compatible chat-completions protocol through
``huggingface_hub.InferenceClient``: to a self-hosted server (vLLM, TGI, Ollama; ``endpoint`` is
its base URL such as ``http://gpu-box:8000/v1``) or to Hugging Face inference providers
(``endpoint`` ``hf:auto`` or ``hf:<provider>``, which needs a token). The answer is asked for
as JSON against :data:`ANSWER_SCHEMA` and validated; an invalid answer is asked for once more
and then reported as a failure with its reason. Nothing is ever guessed: a failed call gives
:class:`LlmOutcome` with ``rating=None`` and ``failure`` set.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from adasam.errors import ConfigError
from adasam.segex_rubric import RUBRIC_ITEMS, SCORE_LABELS, VERDICT_LABELS

MIN_SIDE = 512
"""The rendered image is scaled up (nearest neighbour) until its shorter side is this long."""
OUTLINE_RGB = (255, 230, 0)

ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": min(SCORE_LABELS), "maximum": max(SCORE_LABELS)},
        "verdict": {"type": "string", "enum": list(VERDICT_LABELS.values())},
        "rubric": {
            "type": "object",
            "properties": {key: {"type": "boolean"} for key in RUBRIC_ITEMS.values()},
            "required": list(RUBRIC_ITEMS.values()),
            "additionalProperties": False,
        },
        "rationale": {"type": "string", "maxLength": 2000},
    },
    "required": ["score", "verdict", "rubric", "rationale"],
    "additionalProperties": False,
}
"""The JSON answer the model must give (also sent as the response format)."""


def _system_prompt() -> str:
    levels = "\n".join(f"- {label}" for label in SCORE_LABELS.values())
    verdicts = ", ".join(VERDICT_LABELS.values())
    criteria = "\n".join(f"- {key}: {label}" for label, key in RUBRIC_ITEMS.items())
    return (
        "You are a radiologist rating an automatic segmentation for the SegEx quality study. "
        "The image shows one windowed slice; the yellow outline is the mask to rate. Rate it "
        "exactly as a clinician using this form would.\n"
        f"Score (integer):\n{levels}\n"
        f"Verdict (one of): {verdicts}\n"
        "Rubric (true when the criterion is met):\n"
        f"{criteria}\n"
        "Answer with one JSON object and nothing else, matching this JSON schema:\n"
        f"{json.dumps(ANSWER_SCHEMA, sort_keys=True)}\n"
        "The rationale is one short paragraph."
    )


SYSTEM_PROMPT = _system_prompt()
USER_TEMPLATE = "Structure: {structure}. Modality: {modality}. Rate the outlined mask."
PROMPT_VERSION = hashlib.sha256((SYSTEM_PROMPT + "\n" + USER_TEMPLATE).encode()).hexdigest()[:16]
"""Hash of the prompt text and schema; stored with every rating the prompt produced."""


@dataclass(frozen=True)
class LlmConfig:
    """Where the LLM observer is and how long to wait for it."""

    endpoint: str = field(
        metadata={"help": "base URL of an OpenAI-compatible server, or hf:auto / hf:<provider>"}
    )
    model: str = field(metadata={"help": "model name sent with each request"})
    token: str = field(default="", repr=False, metadata={"help": "API token (hf: needs one)"})
    timeout_s: float = field(default=60.0, metadata={"help": "seconds to wait for one answer"})
    max_tokens: int = field(default=600, metadata={"help": "longest answer, in tokens"})

    def __post_init__(self) -> None:
        if not self.endpoint.strip() or not self.model.strip():
            raise ConfigError(
                "the LLM observer is off: set ADASAM_LLM_ENDPOINT and ADASAM_LLM_MODEL "
                "(see the README, 'LLM observer')"
            )
        if self.is_hub and not self.token:
            raise ConfigError(
                f"ADASAM_LLM_ENDPOINT={self.endpoint} uses Hugging Face inference providers, "
                "which need a token: set ADASAM_LLM_TOKEN (or HF_TOKEN)"
            )
        if not self.is_hub and not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"ADASAM_LLM_ENDPOINT={self.endpoint!r} must be an http(s) URL or hf:<provider>"
            )
        if self.timeout_s <= 0 or self.max_tokens <= 0:
            raise ConfigError("the LLM time-out and max tokens must be positive")

    @property
    def is_hub(self) -> bool:
        """Whether the endpoint is Hugging Face's inference providers."""
        return self.endpoint.startswith("hf:")


@dataclass(frozen=True)
class LlmRating:
    """A valid answer: score 1..5, a storage verdict, rubric key → met, the rationale."""

    score: int
    verdict: str
    rubric: dict[str, bool]
    rationale: str


@dataclass(frozen=True)
class LlmOutcome:
    """One rating attempt: either ``rating`` or ``failure`` (the reason) is set."""

    rating: LlmRating | None
    failure: str | None
    latency_ms: float
    attempts: int
    model: str
    endpoint: str
    prompt_version: str = PROMPT_VERSION


class AnswerError(ValueError):
    """The model's answer is not a valid SegEx rating (the message says why)."""


def render_case(display: np.ndarray, mask: np.ndarray) -> bytes:
    """PNG bytes of the windowed slice with the mask's outline, and nothing else.

    Args:
        display: uint8 ``(H, W)`` or ``(H, W, 3)``, the de-identified windowed display image.
        mask: bool ``(H, W)``, the mask to rate.
    """
    image = np.asarray(display)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"display must be uint8 (H, W) or (H, W, 3), got {image.shape}")
    if np.asarray(mask).shape != image.shape[:2]:
        raise ValueError(f"mask {np.asarray(mask).shape} does not match slice {image.shape[:2]}")
    scale = max(1, -(-MIN_SIDE // min(image.shape[:2])))
    big = np.kron(image, np.ones((scale, scale, 1), dtype=np.uint8))
    region = np.kron(np.asarray(mask, dtype=bool), np.ones((scale, scale), dtype=bool))
    ring = region & ~ndimage.binary_erosion(region, iterations=max(1, scale // 2))
    big[ring] = OUTLINE_RGB
    buffer = io.BytesIO()
    Image.fromarray(big, mode="RGB").save(buffer, format="PNG")  # no text chunks
    return buffer.getvalue()


def build_messages(png: bytes, structure: str, modality: str) -> list[dict[str, Any]]:
    """The chat: the rubric as the system message, then the image and the structure's name."""
    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    text = USER_TEMPLATE.format(structure=structure, modality=modality or "unknown")
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        },
    ]


def _strip_fence(text: str) -> str:
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    return body.strip()


def parse_answer(text: str | None) -> LlmRating:
    """Validate the model's answer against :data:`ANSWER_SCHEMA`.

    Raises:
        AnswerError: not JSON, a missing or extra field, a score off the scale, an unknown
            verdict, a rubric answer that is not true/false.
    """
    if not text or not text.strip():
        raise AnswerError("empty answer")
    try:
        data = json.loads(_strip_fence(text))
    except json.JSONDecodeError as error:
        raise AnswerError(f"answer is not JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(data, dict):
        raise AnswerError("answer is not a JSON object")
    missing = [k for k in ANSWER_SCHEMA["required"] if k not in data]
    extra = [k for k in data if k not in ANSWER_SCHEMA["properties"]]
    if missing or extra:
        raise AnswerError(f"answer fields wrong: missing {missing}, unexpected {extra}")
    score = data["score"]
    if isinstance(score, bool) or not isinstance(score, int) or score not in SCORE_LABELS:
        raise AnswerError(f"score {score!r} is not an integer from 1 to 5")
    if data["verdict"] not in VERDICT_LABELS.values():
        raise AnswerError(f"verdict {data['verdict']!r} is not one of the form's verdicts")
    rubric = data["rubric"]
    keys = set(RUBRIC_ITEMS.values())
    if not isinstance(rubric, dict) or set(rubric) != keys:
        raise AnswerError(f"rubric must answer exactly {sorted(keys)}")
    if not all(isinstance(v, bool) for v in rubric.values()):
        raise AnswerError("rubric answers must be true or false")
    if not isinstance(data["rationale"], str) or len(data["rationale"]) > 2000:
        raise AnswerError("rationale must be text of at most 2000 characters")
    return LlmRating(
        score=score, verdict=data["verdict"], rubric=dict(rubric), rationale=data["rationale"]
    )


def _client(config: LlmConfig) -> Any:
    from huggingface_hub import InferenceClient

    if config.is_hub:
        provider = config.endpoint.split(":", 1)[1] or "auto"
        return InferenceClient(provider=provider, api_key=config.token, timeout=config.timeout_s)
    return InferenceClient(
        base_url=config.endpoint.rstrip("/"), api_key=config.token or None, timeout=config.timeout_s
    )


def call_failure(error: Exception, config: LlmConfig) -> str:
    """A clear, one-line reason for a failed call (time-out, HTTP status, connection)."""
    from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

    if isinstance(error, InferenceTimeoutError):
        return f"time-out: no answer within {config.timeout_s:g} s from {config.endpoint}"
    if isinstance(error, HfHubHTTPError):
        status = getattr(error.response, "status_code", None)
        hints = {
            401: "the endpoint refused the token: check ADASAM_LLM_TOKEN",
            403: "the token may not use this model: check ADASAM_LLM_TOKEN and the model",
            404: "no such model or endpoint: check ADASAM_LLM_MODEL and ADASAM_LLM_ENDPOINT",
            429: "rate limited by the endpoint: wait and run again, or lower the request rate",
        }
        hint = hints.get(status or 0, "server error" if (status or 0) >= 500 else "refused")
        return f"HTTP {status}: {hint}"
    return f"cannot reach {config.endpoint}: {type(error).__name__}: {str(error)[:200]}"


def _ask(client: Any, config: LlmConfig, messages: list[dict[str, Any]]) -> str | None:
    response = client.chat_completion(
        messages,
        model=config.model,
        max_tokens=config.max_tokens,
        temperature=0.0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "segex_rating", "schema": ANSWER_SCHEMA, "strict": True},
        },
    )
    return response.choices[0].message.content


def rate_case(
    config: LlmConfig,
    display: np.ndarray,
    mask: np.ndarray,
    *,
    structure: str,
    modality: str = "",
    clock: Callable[[], float] = time.perf_counter,
) -> LlmOutcome:
    """Ask the model for a SegEx rating of ``mask`` on ``display`` (see :func:`render_case`).

    An invalid answer is asked for once more; a second invalid answer, a time-out, an HTTP
    error or an unreachable endpoint gives a failed outcome with its reason.
    """
    messages = build_messages(render_case(display, mask), structure, modality)
    client = _client(config)
    start = clock()
    failure: str | None = None
    rating: LlmRating | None = None
    attempts = 0
    while attempts < 2:
        attempts += 1
        try:
            text = _ask(client, config, messages)
        except Exception as error:  # any call failure (HTTP, time-out, network) is recorded
            failure = call_failure(error, config)
            break
        try:
            rating, failure = parse_answer(text), None
            break
        except AnswerError as error:
            failure = f"invalid answer twice; last: {error}"
    return LlmOutcome(
        rating=rating,
        failure=failure,
        latency_ms=(clock() - start) * 1000.0,
        attempts=attempts,
        model=config.model,
        endpoint=config.endpoint,
    )
