"""The accuracy guard: a backend is used by default only if it segments like PyTorch fp32.

On held-out phantom slices (seed :data:`GUARD_SEED`, on which nothing was chosen) and the two
pydicom example slices, the candidate backend's predictor and the PyTorch fp32 predictor run
the whole pipeline, plus a fixed-box prompt on every slice (so the decoder is compared even
where the classifier finds nothing) and two clicks refining it (:data:`GUARD_CLICKS`, each
predictor feeding back its own previous logits, as a click session does), so the click
decoder is held to the same bar. Each PyTorch candidate mask is matched with the backend's
candidate of highest IoU. The backend passes when the mean IoU is ≥ :data:`MIN_IOU`, every
matched score is within :data:`MAX_SCORE_DIFF`, and it finds exactly the same structures.

Results are kept per bundle hash in ``CACHE/guard/<hash>.json``, one entry per machine (CPU
model, cores) with the measured latencies; :func:`choose` picks the fastest passing backend of
this machine's entry (``ADASAM_BACKEND=auto``). Records of the shipped demo bundles measured on
the project's machines are shipped in ``assets/guard/`` (:data:`SHIPPED_ROOT`, written by
``python -m adasam bench --ship``, which adds or replaces the entry of the machine it runs
on); a record of this machine in the cache directory comes first, and a record of another
machine (CPU model, cores) or of other weights or library versions (the hash covers both) is
never used. Each backend's verdict also records which engine ran its click decoder
(:func:`adasam.onnx_backend.decoder_engine`); a verdict measured with another decoder than the
backend runs now does not count (records written before verdicts named it mean ONNX Runtime
fp32, which every exported backend but ``openvino-bf16-clicks`` runs).
"""

from __future__ import annotations

import io
import json
import os
import platform
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from adasam.predictor import Candidate, Click, Predictor
from adasam.settings import ASSETS_DIR

GUARD_SEED = 20261201
MIN_IOU = 0.97
MAX_SCORE_DIFF = 0.02
DICOM_EXAMPLES = ("CT_small.dcm", "MR_small.dcm")
PHANTOM_WINDOWS = {"thigh-mri": "auto", "liver-ct": "ct-abdomen"}
SHIPPED_ROOT = ASSETS_DIR
"""Where the shipped accuracy-guard records are: ``SHIPPED_ROOT/guard/<hash>.json``."""


def phantom_images(
    seed: int, per_kind: int, size: int = 256, kinds: Sequence[str] = tuple(PHANTOM_WINDOWS)
) -> Iterator[np.ndarray]:
    """uint8 ``(size, size, 3)`` display images of phantom slices of each of ``kinds`` (default
    every kind), windowed by the studio's own loader (:func:`adasam.imaging.load_slice`)."""
    from adasam.phantoms import generate

    for kind in kinds:
        for case in generate(kind, per_kind, seed, size):
            yield phantom_display(case.image, kind)


def phantom_display(image: np.ndarray, kind: str) -> np.ndarray:
    """A phantom's raw image ``(H, W)`` (its kind's units) → uint8 ``(H, W, 3)`` display
    image, windowed by the studio's own loader as an uploaded ``.npy`` would be."""
    from adasam.imaging import load_slice

    buf = io.BytesIO()
    np.save(buf, image.astype(np.float32))
    return load_slice(buf.getvalue(), name="phantom.npy", window=PHANTOM_WINDOWS[kind]).display


def dicom_images() -> list[np.ndarray]:
    """The pydicom example slices (``assets/examples``) as display images."""
    from adasam.imaging import load_slice

    return [load_slice(ASSETS_DIR / "examples" / n, name=n).display for n in DICOM_EXAMPLES]


def guard_images(per_kind: int = 3) -> list[np.ndarray]:
    return [*phantom_images(GUARD_SEED, per_kind), *dicom_images()]


GUARD_CLICKS = ((0.5, 0.5, True), (0.3, 0.3, False))
"""The guard's clicks on the fixed box, as fractions of the slice's (x, y), and positive?"""


def fixed_box(hw: tuple[int, int]) -> list[float]:
    """The centre half of the slice, XYXY: the prompt used where nothing was found."""
    h, w = hw
    return [w * 0.25, h * 0.25, w * 0.75, h * 0.75]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@dataclass(frozen=True)
class GuardResult:
    """How a backend's predictions compare with PyTorch fp32 on the guard slices."""

    backend: str
    images: int
    masks: int
    mean_iou: float
    min_iou: float
    max_score_diff: float
    presence_agreement: float
    passed: bool
    decoder: str = "onnxruntime-fp32"


def _match(ref: Sequence[Candidate], got: Sequence[Candidate]) -> list[tuple[float, float]]:
    out = []
    for r in ref:
        best = max(got, key=lambda g: iou(r.mask, g.mask))
        out.append((iou(r.mask, best.mask), abs(r.score - best.score)))
    return out


def compare(
    reference: Predictor, candidate: Predictor, images: Sequence[np.ndarray]
) -> GuardResult:
    """Run both predictors on ``images`` and compare masks, scores and found structures."""
    pairs: list[tuple[float, float]] = []
    agree = total = 0
    for image in images:
        a, b = reference.predict(image), candidate.predict(image)
        for sa, sb in zip(a.structures, b.structures, strict=True):
            total += 1
            agree += sa.found == sb.found
            if sa.found and sb.found:
                pairs += _match(sa.candidates, sb.candidates)
        box = fixed_box(image.shape[:2])
        pairs += _match(reference.segment(image, box=box), candidate.segment(image, box=box))
        pairs += _click_pairs(reference, candidate, image, box)
    ious = [p[0] for p in pairs]
    diffs = [p[1] for p in pairs]
    mean_iou = float(np.mean(ious))
    presence = agree / max(total, 1)
    return GuardResult(
        backend=candidate.backend.name,
        images=len(images),
        masks=len(pairs),
        mean_iou=mean_iou,
        min_iou=float(np.min(ious)),
        max_score_diff=float(np.max(diffs)),
        presence_agreement=presence,
        passed=mean_iou >= MIN_IOU and max(diffs) <= MAX_SCORE_DIFF and presence == 1.0,
        decoder=getattr(candidate.backend, "decoder_engine", None) or "torch",
    )


def _click_pairs(
    reference: Predictor, candidate: Predictor, image: np.ndarray, box: list[float]
) -> list[tuple[float, float]]:
    """The fixed box refined by :data:`GUARD_CLICKS` one after another on both predictors."""
    h, w = image.shape[:2]
    predictors = (reference, candidate)
    logits = [p.segment(image, box=box, multimask=False)[0].logits for p in predictors]
    clicks: list[Click] = []
    pairs = []
    for fx, fy, positive in GUARD_CLICKS:
        clicks.append(Click(w * fx, h * fy, positive))
        ref, got = (p.refine(image, clicks, prev, box) for p, prev in zip(predictors, logits))
        logits = [ref.logits, got.logits]
        pairs += _match([ref], [got])
    return pairs


def median_predict_ms(predictor: Predictor, image: np.ndarray, runs: int) -> float:
    """Median wall time of a whole ``predict`` of a new slice (cache cleared each run)."""
    times = []
    predictor.clear_cache()
    predictor.predict(image)  # warm-up
    for _ in range(runs):
        predictor.clear_cache()
        start = time.perf_counter()
        predictor.predict(image)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


# -- records and the default backend ----------------------------------------------------------


def machine() -> dict[str, object]:
    """What the latencies depend on: CPU model and usable cores (threads are recorded apart)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
    }


def record_path(cache_dir: Path, digest: str) -> Path:
    return Path(cache_dir) / "guard" / f"{digest[:20]}.json"


def write_record(
    cache_dir: Path,
    digest: str,
    results: Sequence[GuardResult],
    predict_ms: dict[str, float],
    threads: int | None = None,
    model: str = "",
) -> Path:
    """Keep the guard results and the predict latencies (ms, same run, ``threads`` intra-op
    threads) of a bundle (``model``: its name and version, for people reading the record).

    One file per bundle hash holds one entry per machine (CPU model and cores): this machine's
    entry is replaced, those of other machines are kept, so records shipped from several
    machines live side by side."""
    path = record_path(cache_dir, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    here = machine()
    entry = {
        "machine": here,
        "threads": threads,
        "measured": time.strftime("%Y-%m-%d", time.gmtime()),
        "guard": {"seed": GUARD_SEED, "min_iou": MIN_IOU, "max_score_diff": MAX_SCORE_DIFF},
        "backends": {
            r.backend: {**asdict(r), "predict_ms": predict_ms.get(r.backend)} for r in results
        },
        "torch_predict_ms": predict_ms.get("torch"),
    }
    others: list[dict] = []
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            if old.get("hash") == digest:
                others = [e for e in machine_entries(old) if e.get("machine") != here]
        except (OSError, ValueError, AttributeError):
            others = []  # an unreadable record is replaced, not merged
    data = {"hash": digest, "model": model, "machines": [*others, entry]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def machine_entries(data: dict) -> list[dict]:
    """The per-machine entries of a record (a record of the first format is one entry)."""
    if "machines" in data:
        return list(data["machines"])
    return [{k: v for k, v in data.items() if k not in ("hash", "model")}]


def find_record(
    cache_dir: Path, digest: str, shipped_dir: Path | None = SHIPPED_ROOT
) -> tuple[dict | None, str]:
    """This machine's guard record of a bundle (the cache's first, then the shipped one) and
    where it came from; ``(None, why)`` when there is none."""
    here = machine()
    other = False
    places = [(cache_dir, "measured here")]
    if shipped_dir is not None:
        places.append((shipped_dir, "shipped record"))
    for directory, origin in places:
        path = record_path(directory, digest)
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        if data.get("hash") == digest:
            for entry in machine_entries(data):
                if entry.get("machine") == here:
                    found = {**entry, "hash": digest, "model": data.get("model", "")}
                    return found, f"{origin}, {entry.get('measured', 'undated')}"
        other = True
    if other:
        return None, (
            "the accuracy-guard record of this model was measured on another machine "
            "(python -m adasam bench --bundle DIR measures this one)"
        )
    return None, (
        "no accuracy-guard record for this model on this machine yet "
        "(python -m adasam bench --bundle DIR writes one)"
    )


def choose(
    cache_dir: Path, digest: str, shipped_dir: Path | None = SHIPPED_ROOT
) -> tuple[str, str]:
    """The default backend for a bundle on this machine and the reason, from its record."""
    data, origin = find_record(cache_dir, digest, shipped_dir)
    if data is None:
        return "torch", origin
    torch_ms = data.get("torch_predict_ms")
    from adasam.onnx_backend import decoder_engine

    judged = {  # verdicts measured with the click decoder the backend runs now
        name: r
        for name, r in data["backends"].items()
        if r.get("decoder", "onnxruntime-fp32") == decoder_engine(name)
    }
    passing = [
        (float(r["predict_ms"]), name)
        for name, r in judged.items()
        if r["passed"] and r.get("predict_ms") is not None
    ]
    stale = sorted(set(data["backends"]) - set(judged))
    if stale:
        origin += f"; {', '.join(stale)} not judged: measured with another click decoder"
    if not passing or torch_ms is None:
        return "torch", f"no exported backend passed the accuracy guard ({origin})"
    ms, name = min(passing)
    if ms >= torch_ms:
        return "torch", (
            f"no backend that passed the guard beat PyTorch ({torch_ms:.0f} ms; {origin})"
        )
    r = data["backends"][name]
    return name, (
        f"fastest backend passing the accuracy guard: predict {ms:.0f} ms vs PyTorch "
        f"{torch_ms:.0f} ms; mean IoU {r['mean_iou']:.3f}, max score diff "
        f"{r['max_score_diff']:.3f} on {r['images']} held-out slices ({origin})"
    )


def summary(cache_dir: Path, shipped_dir: Path | None = SHIPPED_ROOT) -> list[str]:
    """One line per accuracy-guard record of this machine (the cache's, then the shipped
    ones): the model, the backend ``auto`` would take and why. Read at start-up, before any
    model is loaded; the hash is checked when a model loads (a retrained model gets PyTorch
    until it is benched)."""
    lines: list[str] = []
    seen: set[str] = set()
    here = machine()
    for directory in (cache_dir, shipped_dir):
        if directory is None or not (Path(directory) / "guard").is_dir():
            continue
        for path in sorted((Path(directory) / "guard").glob("*.json")):
            try:
                data = json.loads(path.read_text())
                digest = str(data["hash"])
            except (OSError, ValueError, KeyError, TypeError):
                lines.append(f"unreadable accuracy-guard record {path.name}: ignored")
                continue
            if digest in seen or all(e.get("machine") != here for e in machine_entries(data)):
                continue
            seen.add(digest)
            name, reason = choose(cache_dir, digest, shipped_dir)
            lines.append(f"{data.get('model') or digest[:12]}: {name} ({reason})")
    return lines
