"""The RISC-V ISA and engine tests again, on the native backend.

The tests themselves live in tests/riscv and tests/tcg; here every engine they
create is a native one, so one set of assertions covers both backends.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pemu.accel.tcg import engine as engine_module
from tests.native.native_harness import needs_native

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "riscv"))

import rvtest_harness  # noqa: E402
from test_riscv_exec import *  # noqa: E402,F403
from test_riscv_vs_qemu import *  # noqa: E402,F403

import tests.tcg.test_engine as engine_tests  # noqa: E402
from tests.tcg.test_engine import *  # noqa: E402,F403

pytestmark = needs_native
_TCGEngine = engine_module.TCGEngine


_created: list[object] = []


def _native_engine(mem: object, target: object, backend: str = "python",
                   **kw: object) -> object:
    engine = _TCGEngine(mem, target, backend="native", **kw)
    _created.append(engine)
    return engine


@pytest.fixture(autouse=True)
def _force_native_backend(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN202
    for module in (rvtest_harness, engine_tests, sys.modules["test_riscv_exec"]):
        monkeypatch.setattr(module, "TCGEngine", _native_engine)
    _created.clear()
    yield
    # the test really ran native code (tests that build no engine are skipped here)
    assert all(e.backend_name == "native" for e in _created)
    assert all(e.backend.stats["exits_miss"] + e.backend.stats["exits_exc"] > 0
               for e in _created if e.stats["translated"])
