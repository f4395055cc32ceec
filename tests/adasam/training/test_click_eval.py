"""Click-protocol summaries and table of ``evaluate``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adasam.clicks import ClickTrace
from adasam.predictor import Click
from adasam.training.click_eval import ClickSettings, click_table, summarize


def _trace(*ious: float) -> ClickTrace:
    return ClickTrace(list(ious), [Click(0, 0)] * (len(ious) - 1))


def test_summary_pools_noc_miou_and_worse_clicks() -> None:
    traces = [
        _trace(0.80, 0.88, 0.92),  # NoC@85 1, NoC@90 2
        _trace(0.95),  # the start already meets both: 0 clicks
        _trace(0.50, 0.40, 0.60, 0.55, 0.56),  # never 0.85 within 4 clicks; two drops > 0.02
    ]
    s = summarize(traces, "box", max_clicks=4)
    assert s.n == 3 and s.n_clicks == 6
    assert s.noc[0.85] == pytest.approx((5 / 3, float(np.std([1, 0, 4]))))
    assert s.noc[0.90][0] == pytest.approx((2 + 0 + 4) / 3)
    assert s.start_iou == pytest.approx((0.8 + 0.95 + 0.5) / 3)
    assert s.miou_after[1] == pytest.approx((0.88 + 0.95 + 0.40) / 3)
    assert s.miou_after[5] == pytest.approx((0.92 + 0.95 + 0.56) / 3)  # held at the last IoU
    assert s.worse_share == pytest.approx(2 / 6)
    d = s.to_dict()
    assert d["noc90_mean"] == pytest.approx(2.0) and d["worse_click_share"] == pytest.approx(1 / 3)
    table = click_table([("liver", s)])
    assert "NoC@85" in table and "| liver | box | 3 |" in table and "33.3% of 6" in table


def test_empty_summary_is_nan_not_an_error() -> None:
    s = summarize([], "cam", max_clicks=20)
    assert s.n == 0 and math.isnan(s.worse_share) and math.isnan(s.miou_after[3])
    assert s.to_dict()["worse_click_share"] is None
    assert "n/a" in click_table([("vm", s)])


@pytest.mark.parametrize(
    "kw", [{"max_clicks": 0}, {"max_slices": 0}, {"stop_iou": 0.0}, {"stop_iou": 1.2}]
)
def test_click_settings_are_validated(kw: dict) -> None:
    with pytest.raises(ValueError):
        ClickSettings(**kw)
