from __future__ import annotations

import sys
import types

from adasam import zerogpu


def test_gpu_wrapper_is_a_no_op_without_spaces(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces → ImportError

    def f(x: int) -> int:
        return x + 1

    assert zerogpu.spaces_module() is None
    assert zerogpu.gpu(f) is f and zerogpu.gpu(f)(1) == 2


def test_gpu_wrapper_uses_spaces_gpu_when_present(monkeypatch) -> None:
    calls: list[int] = []
    fake = types.ModuleType("spaces")

    def gpu(duration: int):  # spaces.GPU(duration=…)(fn)
        def wrap(fn):
            def wrapped(*a, **k):
                calls.append(duration)
                return fn(*a, **k)

            return wrapped

        return wrap

    fake.GPU = gpu  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spaces", fake)
    wrapped = zerogpu.gpu(lambda x: x * 2, duration=30)
    assert wrapped(4) == 8 and calls == [30]
