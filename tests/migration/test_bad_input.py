"""Streams are untrusted: every malformed one is a MigrationError, and the device it was
loaded into stays exactly as it was (its state, and what the guest sees afterwards)."""

from __future__ import annotations

import random

import pytest

from pemu.hw.core import Device
from pemu.migration import MigrationError, load_device, save_device
from pemu.migration.fields import encode_field
from pemu.migration.section import MAX_PAYLOAD, decode_section
from pemu.migration.wire import put_uint
from tests.migration.scenarios import SCENARIOS, Rig, Scenario
from tests.migration.streams import reframe, replace_field


@pytest.fixture(params=list(SCENARIOS.values()), ids=lambda sc: sc.device_type.__name__)
def scenario(request) -> Scenario:
    return request.param


def assert_refused(rig: Rig, dev: Device, data: bytes, match: str | None = None) -> None:
    before = [save_device(d) for d in rig.devices]
    with pytest.raises(MigrationError, match=match):
        load_device(dev, data)
    assert [save_device(d) for d in rig.devices] == before


def assert_untouched(sc: Scenario, rig: Rig) -> None:
    """After all the refused loads, the guest sees what an untouched twin shows."""
    assert sc.probe(rig) == sc.probe(sc.configured())


def test_every_truncation_is_refused(scenario):
    rig = scenario.configured()
    for dev in rig.devices:
        data = save_device(dev)
        for n in range(len(data)):
            assert_refused(rig, dev, data[:n])
    assert_untouched(scenario, rig)


def test_every_flipped_byte_is_refused(scenario):
    rig = scenario.configured()
    for dev in rig.devices:
        data = save_device(dev)
        for i in range(len(data)):
            for flip in (0x01, 0x80):
                bad = bytearray(data)
                bad[i] ^= flip
                assert_refused(rig, dev, bytes(bad))
    assert_untouched(scenario, rig)


def test_payload_garbage_behind_a_valid_checksum_never_escapes(scenario):
    """Random damage the CRC cannot see: refused cleanly, or taken as a state the device
    can live with - one it saves and that loads again (post-load hooks may act on it:
    an RTC alarm in the past fires, so the saved bytes need not be the loaded ones)."""
    rng = random.Random(2024)
    for _ in range(150):
        rig = scenario.configured()
        dev = rig.devices[rng.randrange(len(rig.devices))]
        payload = bytearray(decode_section(save_device(dev))[0].payload)
        for _ in range(rng.randint(1, 4)):
            payload[rng.randrange(len(payload))] = rng.randrange(256)
        data = reframe(save_device(dev), payload=bytes(payload))
        before = [save_device(d) for d in rig.devices]
        try:
            load_device(dev, data)
        except MigrationError:
            assert [save_device(d) for d in rig.devices] == before
        else:
            twin = scenario.fresh_like(rig).devices[rig.devices.index(dev)]
            load_device(twin, save_device(dev))


def test_versions_the_device_does_not_have_are_refused(scenario):
    rig = scenario.configured()
    for dev in rig.devices:
        data = save_device(dev)
        assert_refused(rig, dev, reframe(data, version=dev.vmstate.version + 1), "newer")
        assert_refused(rig, dev, reframe(data, version=0), "older than the oldest")
        assert_refused(rig, dev, reframe(data, name="not-" + dev.vmstate.name), "state of")
    assert_untouched(scenario, rig)


def test_framing_lies_are_refused(scenario):
    rig = scenario.configured()
    for dev in rig.devices:
        data = save_device(dev)
        payload = decode_section(data)[0].payload
        assert_refused(rig, dev, data + b"\0", "1 unexpected bytes after the section")
        assert_refused(rig, dev, reframe(data, payload=payload + b"\0"), "1 bytes left over")
        assert_refused(rig, dev, b"XXXX" + data[4:], "bad magic")
        huge = bytearray(data)
        name_len = data[4]
        huge[9 + name_len:13 + name_len] = (0xFFFF_FFFF).to_bytes(4, "little")
        assert_refused(rig, dev, bytes(huge), f"exceeds {MAX_PAYLOAD}")
    assert_untouched(scenario, rig)


def test_lying_lengths_are_refused_without_allocating(scenario):
    rig = scenario.configured()
    for dev in rig.devices:
        for f in dev.vmstate.fields:
            if not (f.is_array or f.kind == "bytes"):
                continue
            for count in (0xFFFF_FFFF, 1 << 31, 1 << 20):
                raw = bytearray()
                put_uint(raw, 4, count)
                assert_refused(rig, dev, replace_field(dev, f.name, bytes(raw)), f.name)
    assert_untouched(scenario, rig)


def test_array_of_another_configuration_is_refused(scenario):
    rig = scenario.configured()
    for dev in rig.devices:
        for f in dev.vmstate.fields:
            if not f.is_array:
                continue
            value = list(getattr(dev, f.name))
            for wrong in (value + value[:1], value[:-1]):
                raw = bytearray()
                encode_field(raw, f, wrong)
                assert_refused(rig, dev, replace_field(dev, f.name, bytes(raw)),
                               f"{f.name}: {len(wrong)} elements in the state")
    assert_untouched(scenario, rig)


def test_bool_bytes_other_than_0_and_1_are_refused(scenario):
    rig = scenario.configured()
    for dev in rig.devices:
        for f in dev.vmstate.fields:
            if f.kind == "bool":
                assert_refused(rig, dev, replace_field(dev, f.name, b"\x02"), "neither 0 nor 1")
            elif f.kind == "bool[]" and getattr(dev, f.name):
                n = len(getattr(dev, f.name))
                raw = n.to_bytes(4, "little") + b"\x01" * (n - 1) + b"\xff"
                assert_refused(rig, dev, replace_field(dev, f.name, raw), "neither 0 nor 1")
