"""ADASAM_BACKEND=auto from accuracy-guard records written by hand (no bench runs here): the
fastest passing backend of this machine, the cache's record before the shipped one, PyTorch
without a usable record; the start-up report; the shipped records are well formed."""

from __future__ import annotations

import json
from pathlib import Path

from adasam import guard
from adasam.backends import BACKENDS, TorchBackend, make_backend, startup_report
from adasam.bundle import create_bundle, read_config
from adasam.onnx_backend import decoder_engine
from adasam.settings import DEMO_BUNDLES
from tests.conftest import tiny_config

DIGEST = "ab" * 32


def _result(name: str, passed: bool, mean_iou: float = 0.99) -> guard.GuardResult:
    return guard.GuardResult(name, 8, 40, mean_iou, 0.9, 0.01, 1.0, passed, decoder_engine(name))


def _write(directory: Path, predict_ms: dict[str, float], failing: tuple[str, ...] = ()) -> Path:
    results = [_result(n, n not in failing) for n in predict_ms if n != "torch"]
    return guard.write_record(directory, DIGEST, results, predict_ms, 2, "demo v0")


def test_auto_takes_the_fastest_passing_backend_of_a_shipped_record(tmp_path) -> None:
    cache, shipped = tmp_path / "cache", tmp_path / "shipped"
    ms = {
        "torch": 1900.0,
        "onnxruntime-fp32": 900.0,
        "openvino-int8": 300.0,
        "openvino-bf16": 450.0,
    }
    _write(shipped, ms, failing=("openvino-int8",))  # the fastest failed the guard
    name, reason = guard.choose(cache, DIGEST, shipped)
    assert name == "openvino-bf16"
    assert "450 ms vs PyTorch 1900 ms" in reason and "shipped record" in reason


def test_a_verdict_measured_with_another_click_decoder_does_not_count(tmp_path) -> None:
    """openvino-bf16-clicks runs its click decoder in bf16: a verdict naming another decoder
    never picks it; records written before verdicts named their decoder mean ONNX Runtime fp32,
    still right for every other backend."""
    cache, shipped = tmp_path / "cache", tmp_path / "shipped"
    name = "openvino-bf16-clicks"
    old = guard.GuardResult(name, 8, 40, 0.99, 0.9, 0.01, 1.0, True, "onnxruntime-fp32")
    ms = {"torch": 1900.0, name: 250.0, "openvino-bf16": 300.0, "openvino-fp32": 600.0}
    path = guard.write_record(
        shipped,
        DIGEST,
        [old, _result("openvino-bf16", True), _result("openvino-fp32", True)],
        ms,
        2,
        "m",
    )
    chosen, reason = guard.choose(cache, DIGEST, shipped)
    assert chosen == "openvino-bf16"
    assert f"{name} not judged: measured with another click decoder" in reason
    data = json.loads(path.read_text())
    for entry in data["machines"]:
        for r in entry["backends"].values():
            del r["decoder"]  # a record written before verdicts named their decoder
    path.write_text(json.dumps(data))
    assert guard.choose(cache, DIGEST, shipped)[0] == "openvino-bf16"
    guard.write_record(shipped, DIGEST, [_result(name, True)], ms, 2, "m")
    assert guard.choose(cache, DIGEST, shipped)[0] == name  # judged with its own decoder


def test_this_machines_cache_record_comes_before_the_shipped_one(tmp_path) -> None:
    cache, shipped = tmp_path / "cache", tmp_path / "shipped"
    _write(shipped, {"torch": 1900.0, "openvino-bf16": 450.0})
    _write(cache, {"torch": 1900.0, "onnxruntime-fp32": 800.0})
    name, reason = guard.choose(cache, DIGEST, shipped)
    assert name == "onnxruntime-fp32" and "measured here" in reason


def test_no_usable_record_means_pytorch_with_the_reason(tmp_path) -> None:
    cache, shipped = tmp_path / "cache", tmp_path / "shipped"
    assert guard.choose(cache, DIGEST, shipped) == (
        "torch",
        guard.find_record(cache, DIGEST, shipped)[1],
    )
    assert "no accuracy-guard record" in guard.choose(cache, DIGEST, shipped)[1]
    path = _write(shipped, {"torch": 1900.0, "openvino-bf16": 450.0})
    data = json.loads(path.read_text())
    data["machines"][0]["machine"] = {"cpu": "some other CPU", "cores": 64}
    path.write_text(json.dumps(data))
    name, reason = guard.choose(cache, DIGEST, shipped)
    assert name == "torch" and "another machine" in reason
    _write(shipped, {"torch": 500.0, "openvino-bf16": 600.0})  # passes, but slower
    name, reason = guard.choose(cache, DIGEST, shipped)
    assert name == "torch" and "beat PyTorch" in reason
    _write(shipped, {"torch": 1900.0, "openvino-bf16": 450.0}, failing=("openvino-bf16",))
    assert guard.choose(cache, DIGEST, shipped)[0] == "torch"


def test_records_of_two_machines_live_side_by_side(tmp_path, monkeypatch) -> None:
    xeon, epyc = {"cpu": "Xeon", "cores": 2}, {"cpu": "EPYC", "cores": 2}
    monkeypatch.setattr(guard, "machine", lambda: xeon)
    path = _write(tmp_path, {"torch": 1900.0, "openvino-bf16": 450.0})
    monkeypatch.setattr(guard, "machine", lambda: epyc)
    _write(tmp_path, {"torch": 2100.0, "openvino-fp32": 700.0})
    _write(tmp_path, {"torch": 2000.0, "openvino-fp32": 650.0})  # replaces EPYC's own entry
    entries = guard.machine_entries(json.loads(path.read_text()))
    assert [e["machine"] for e in entries] == [xeon, epyc]
    assert guard.choose(tmp_path / "none", DIGEST, tmp_path)[0] == "openvino-fp32"
    assert "650 ms vs PyTorch 2000 ms" in guard.choose(tmp_path / "none", DIGEST, tmp_path)[1]
    monkeypatch.setattr(guard, "machine", lambda: xeon)
    assert guard.choose(tmp_path / "none", DIGEST, tmp_path)[0] == "openvino-bf16"
    first_format = {"hash": DIGEST, "model": "demo v0", **entries[0]}  # one machine, no list
    path.write_text(json.dumps(first_format))
    assert guard.choose(tmp_path / "none", DIGEST, tmp_path)[0] == "openvino-bf16"


def test_make_backend_auto_without_a_record_is_pytorch(tmp_path) -> None:
    bundle = create_bundle(tiny_config(), seed=0)  # its hash has no record anywhere
    backend, reason = make_backend("auto", bundle, cache_dir=tmp_path)
    assert isinstance(backend, TorchBackend) and "no accuracy-guard record" in reason


def test_startup_report_names_each_recorded_model_and_its_backend(tmp_path) -> None:
    assert "set explicitly" in startup_report("torch", tmp_path)[0]
    assert "PyTorch on cuda" in startup_report("auto", tmp_path, "cuda")[0]
    _write(tmp_path, {"torch": 1900.0, "openvino-bf16": 450.0})
    lines = guard.summary(tmp_path, tmp_path / "none")
    assert len(lines) == 1 and lines[0].startswith("demo v0: openvino-bf16 (fastest")
    report = startup_report("auto", tmp_path)
    assert "per model" in report[0] and any("demo v0: openvino-bf16" in x for x in report)


def test_shipped_guard_records_are_well_formed_and_name_a_shipped_bundle() -> None:
    """Every record names a demo bundle or the studio's zero-shot LiteMedSAM (both served by
    ``auto``); a record of a model that no longer ships is dead weight and fails here."""
    from adasam.manual import zero_shot_bundle

    configs = [read_config(p) for p in DEMO_BUNDLES.values()] + [zero_shot_bundle().config]
    names = {f"{c.name} v{c.version}" for c in configs}
    records = sorted((guard.SHIPPED_ROOT / "guard").glob("*.json"))
    assert records  # python -m adasam bench --ship writes them
    for path in records:
        data = json.loads(path.read_text())
        assert path.name == f"{data['hash'][:20]}.json"
        assert data["model"] in names and data["machines"]
        for entry in data["machines"]:
            assert entry["torch_predict_ms"] > 0
            assert set(entry["machine"]) == {"cpu", "cores"} and entry["threads"] >= 1
            for name, r in entry["backends"].items():
                assert name in BACKENDS and isinstance(r["passed"], bool) and r["predict_ms"] > 0
