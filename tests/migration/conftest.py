"""Scenario rigs open drives on shared images; each test closes what it opened."""

from __future__ import annotations

import pytest

# (scenarios first: it imports storage_scenarios at its end)
from tests.migration.scenarios import SCENARIOS  # noqa: F401
from tests.migration.storage_scenarios import close_shared_drives  # noqa: E402


@pytest.fixture(autouse=True)
def _close_scenario_drives():
    yield
    close_shared_drives()
