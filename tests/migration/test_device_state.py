"""Every device's declared state, checked against the device: it round-trips, and a
restored device behaves as the original from then on."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import pemu.hw
from pemu.hw.core import Device
from pemu.migration import load_device, save_device
from tests.migration.scenarios import COVERED_BY, SCENARIOS, TESTED_ELSEWHERE, Scenario


def _all_device_classes() -> set[type[Device]]:
    for mod in pkgutil.walk_packages(pemu.hw.__path__, "pemu.hw."):
        importlib.import_module(mod.name)
    found: set[type[Device]] = set()
    todo = [Device]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("pemu."):  # not the tests' own devices
                found.add(sub)
            todo.append(sub)
    return found


def test_every_device_that_declares_state_has_a_scenario():
    declared = {c for c in _all_device_classes() if c.vmstate is not None}
    assert declared, "no device declares state: the discovery is broken"
    assert declared == set(SCENARIOS) | set(COVERED_BY) | set(TESTED_ELSEWHERE)


def _migrate(sc: Scenario):
    src = sc.configured()
    saved = [save_device(d) for d in src.devices]
    dst = sc.fresh_like(src)
    for dev, data in zip(dst.devices, saved, strict=True):
        load_device(dev, data)
    return src, saved, dst


@pytest.fixture(params=list(SCENARIOS.values()), ids=lambda sc: sc.device_type.__name__)
def scenario(request) -> Scenario:
    return request.param


def test_declared_fields_are_the_devices_attributes(scenario):
    for dev in scenario.configured().devices:
        for f in dev.vmstate.fields:
            assert hasattr(dev, f.name), f"{dev.vmstate.name}: no attribute {f.name}"
            value = getattr(dev, f.name)
            if f.is_array:
                assert isinstance(value, list), f.name
            elif f.kind == "bytes":
                assert isinstance(value, bytes), f.name
            else:
                assert isinstance(value, int), f.name  # bool is an int too


def test_save_reset_load_save_gives_the_same_bytes(scenario):
    src, saved, dst = _migrate(scenario)
    fresh = scenario.fresh_like(src)
    # The scenario put the device somewhere its reset state is not, or the round trip
    # would prove nothing.
    assert [save_device(d) for d in fresh.devices] != saved
    assert [save_device(d) for d in dst.devices] == saved


def test_restored_device_behaves_like_the_original(scenario):
    src, _, dst = _migrate(scenario)
    expected = scenario.probe(src)
    assert scenario.probe(dst) == expected
    assert scenario.probe(scenario.fresh_like(src)) != expected


def test_loading_twice_is_the_same_as_once(scenario):
    src, saved, dst = _migrate(scenario)
    for dev, data in zip(dst.devices, saved, strict=True):
        load_device(dev, data)
    assert scenario.probe(dst) == scenario.probe(src)
