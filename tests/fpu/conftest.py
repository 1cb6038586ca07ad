"""Fixtures for the soft-float tests: the riscv64 oracle built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from fputest_oracle import build_oracle


@pytest.fixture(scope="session")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_oracle(tmp_path_factory.mktemp("fpu_oracle"))
