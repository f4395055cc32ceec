"""``python -m adasam segex``: report, rate-llm (against the local test server), study."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pydicom
import pytest

import storage
from adasam import cli
from adasam.agreement import agreement_report
from adasam.imaging import load_slice
from adasam.llm_observer import PROMPT_VERSION
from adasam.segex import public_endpoint, rating_rows
from tests.llm_server import Reply, fake_llm, good_answer

DICOM = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
PHI = ("Zebulon^Quixotic", "PID-98765-XQ", "Saint Quirinus Hospital", "ACC55501Q")


def _disc(shape: tuple[int, int], radius: int, shift: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - shape[0] // 2) ** 2 + (xx - shape[1] // 2 - shift) ** 2 <= radius**2


@pytest.fixture(autouse=True)
def _environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADASAM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for name in ("ADASAM_LLM_ENDPOINT", "ADASAM_LLM_MODEL", "ADASAM_LLM_TOKEN", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def _store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> storage.Store:
    data = tmp_path / "data"
    return storage.open_store(f"sqlite:///{data / 'adasam.sqlite3'}", data)


def _case(store: storage.Store, k: int, *, phi_dicom: Path | None = None) -> int:
    """A stored slice (from ``phi_dicom`` when given), its prediction and a correction; the id
    of the candidate the correction started from."""
    if phi_dicom is not None:
        sl = load_slice(phi_dicom)
        pixels, display, name = sl.pixels, sl.display, sl.source_name
    else:
        pixels = np.random.default_rng(k).normal(100, 20, (48, 48)).astype(np.float32)
        display = np.repeat(np.clip(pixels, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        name = f"case{k}.png"
    record = storage.record_slice(
        store,
        content_hash=storage.pixels_hash(pixels),
        pixels=pixels,
        display=display,
        modality="CT",
        source_name=name,
    )
    shape = record.shape
    prediction = storage.record_prediction(
        store,
        slice_hash=record.content_hash,
        structure="VL" if k % 2 == 0 else "VM",
        candidates=[_disc(shape, 10), _disc(shape, 14)],
        scores=[0.9, 0.7],
    )
    storage.ensure_annotator(store, "alice")
    correction = storage.record_correction(
        store,
        prediction_id=prediction.id,
        chosen_rank=0,
        final_mask=_disc(shape, 10, shift=k),
        annotator="alice",
        seconds=10.0,
    )
    return correction.candidate_id


def _rate(store: storage.Store, rater: str, candidate: int, score: int) -> None:
    storage.ensure_annotator(store, rater)
    verdict = {1: "reject", 2: "major_edits", 3: "major_edits", 4: "minor_edits"}.get(score)
    storage.record_rating(
        store,
        observer=storage.HumanObserver(rater),
        candidate_id=candidate,
        score=score,
        verdict=verdict or "accept",
    )


def test_report_prints_the_hand_computed_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with _store(tmp_path, monkeypatch) as store:
        cases = [_case(store, k) for k in (0, 2, 4)]  # one structure, three cases
        # alice 1 2 3, bob 1 3 3: kappa_qw = 0.8, exact 2/3, within one 1 (see test_agreement);
        # items x raters [[1,1],[2,3],[3,3]]: MSR = 13/6, MSC = MSE = 1/6, ICC(2,1) = 6/7.
        for case, (a, b) in zip(cases, [(1, 1), (2, 3), (3, 3)], strict=True):
            _rate(store, "alice", case, a)
            _rate(store, "bob", case, b)
        rows = rating_rows(store)
    assert cli.main(["segex", "report", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    pair_line = next(line for line in out.splitlines() if "alice" in line and "bob" in line)
    assert "0.800" in pair_line and "0.67" in pair_line and "1.00" in pair_line
    group_line = next(line for line in out.splitlines() if " humans " in line)
    assert "0.857" in group_line
    report = agreement_report(rows)
    humans = report.groups[0]
    assert f"{humans.alpha_ordinal:.3f}" in group_line  # the library's value, printed
    for name in ("ratings.csv", "pairs.csv", "groups.csv", "raters.csv", "confusion.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_report_and_rate_llm_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with _store(tmp_path, monkeypatch) as store:
        _case(store, 0)
    assert cli.main(["segex", "report"]) == 2
    message = "error: no ratings to report on (rate some cases first)"
    assert capsys.readouterr().err.strip() == message
    assert cli.main(["segex", "rate-llm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "set ADASAM_LLM_ENDPOINT and ADASAM_LLM_MODEL" in err[0]


def test_rate_llm_end_to_end_stores_ratings_and_failures_and_no_phi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if not DICOM.is_file():
        pytest.skip("CT_small.dcm is not bundled with this pydicom")
    ds = pydicom.dcmread(DICOM)
    ds.PatientName, ds.PatientID, ds.InstitutionName, ds.AccessionNumber = PHI
    dicom = tmp_path / "Zebulon_Quixotic.dcm"
    ds.save_as(dicom)
    with _store(tmp_path, monkeypatch) as store:
        cases = [_case(store, 0, phi_dicom=dicom), _case(store, 1), _case(store, 2)]
        _rate(store, "alice", cases[0], 4)
    with fake_llm() as server:
        monkeypatch.setenv("ADASAM_LLM_ENDPOINT", server.url)
        monkeypatch.setenv("ADASAM_LLM_MODEL", "test-vlm")
        monkeypatch.setenv("ADASAM_LLM_TIMEOUT", "5")
        server.script(Reply(good_answer(4)), Reply("{bad"), Reply("{bad"), Reply(status=429))
        assert cli.main(["segex", "rate-llm"]) == 1  # some failed
        out = capsys.readouterr().out
        wire = server.wire()
    assert "1 rated, 2 failed of 3 cases" in out and "HTTP 429" in out
    for secret in (*PHI, "Zebulon", "Zebulon_Quixotic.dcm", str(tmp_path)):
        assert secret.encode() not in wire, secret
    with _store(tmp_path, monkeypatch) as store:
        llm = [r for r in storage.ratings_of(store, candidate_id=cases[0]) if r.annotator is None]
        failures = storage.llm_failures(store)
    assert len(llm) == 1
    assert (llm[0].observer_kind, llm[0].llm_model, llm[0].score) == ("llm", "test-vlm", 4)
    assert llm[0].llm_prompt_version == PROMPT_VERSION and llm[0].llm_endpoint == server.url
    assert llm[0].latency_ms is not None and llm[0].latency_ms > 0
    assert [f.candidate_id for f in failures] == cases[1:]
    assert "invalid answer twice" in failures[0].reason and "HTTP 429" in failures[1].reason
    # A second run skips what this model and prompt rated; the report pairs alice with the LLM.
    with fake_llm() as server:
        monkeypatch.setenv("ADASAM_LLM_ENDPOINT", server.url)
        server.script(Reply(good_answer(3)), Reply(good_answer(2)))
        assert cli.main(["segex", "rate-llm"]) == 0
        assert "2 rated, 0 failed of 2 cases" in capsys.readouterr().out
    assert cli.main(["segex", "report"]) == 0
    assert "human-llm" in capsys.readouterr().out
    database = tmp_path / "data" / "adasam.sqlite3"
    with sqlite3.connect(database) as connection:
        dump = "\n".join(connection.iterdump())
    assert "secret" not in dump and "Zebulon^" not in dump


def test_study_create_and_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with _store(tmp_path, monkeypatch) as store:
        for k in range(3):
            _case(store, k)
        storage.ensure_annotator(store, "bob")
    assert cli.main(["segex", "role", "--name", "boss", "--role", "admin"]) == 0
    assert "boss: role admin" in capsys.readouterr().out
    argv = ["segex", "study", "create", "--name", "pilot", "--admin", "boss"]
    assert cli.main([*argv, "--raters", "alice,bob", "--per-case", "2", "--seed", "3"]) == 0
    assert "3 cases, 2 ratings each" in capsys.readouterr().out
    assert cli.main([*argv, "--raters", "alice", "--per-case", "2"]) == 2
    assert "need at least 2 raters" in capsys.readouterr().err
    assert cli.main(["segex", "study", "list"]) == 0
    assert "pilot: 3 cases × 2 ratings, 0 done" in capsys.readouterr().out


def test_public_endpoint_drops_credentials() -> None:
    assert public_endpoint("https://u:pw@host:8000/v1") == "https://host:8000/v1"
    assert public_endpoint("http://127.0.0.1:9/v1") == "http://127.0.0.1:9/v1"
    assert json.dumps(public_endpoint("hf:auto")) == '"hf:auto"'


def test_the_ml_core_cli_does_not_load_storage_or_the_statistics() -> None:
    import subprocess
    import sys

    code = (
        "import sys, adasam.cli\n"
        "print(sorted(m for m in ('storage', 'pingouin', 'sklearn', 'torch', 'gradio') "
        "if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
