"""The hostile-input suite through the CLI contract: every bad file exits 2 with one line on
stderr (no traceback); odd names with valid content succeed and the name goes nowhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from adasam.cli import main
from tests.hostile import ODD_NAME_PARTS, ODD_NAMES, REFUSED, Hostile


def _predict(case: Hostile, bundle: Path, tmp_path: Path, capsys) -> tuple[int, str, str, Path]:
    path = case.write(tmp_path / "in")
    out = tmp_path / "out"
    rc = main(["predict", str(path), "--bundle", str(bundle), "--out", str(out)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err, out


@pytest.mark.parametrize("case", REFUSED, ids=[c.id for c in REFUSED])
def test_hostile_input_exits_2_with_one_line(
    case: Hostile, tiny_bundle_dir: Path, tmp_path: Path, capsys
) -> None:
    rc, _, err, out = _predict(case, tiny_bundle_dir, tmp_path, capsys)
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err and case.expect is not None
    assert case.expect.lower() in err.lower(), err
    assert not out.exists()  # nothing written for a refused file


@pytest.mark.parametrize("case", ODD_NAMES, ids=[c.id for c in ODD_NAMES])
def test_odd_names_are_accepted_and_kept_nowhere(
    case: Hostile, tiny_bundle_dir: Path, tmp_path: Path, capsys
) -> None:
    rc, printed, _, out = _predict(case, tiny_bundle_dir, tmp_path, capsys)
    assert rc == 0
    written = sorted(out.iterdir())
    assert {p.parent for p in written} == {out}  # nothing outside --out
    for part in ODD_NAME_PARTS:
        assert part not in printed
        for file in written:
            assert part not in file.name and part.encode() not in file.read_bytes()
