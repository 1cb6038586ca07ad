"""Values each device's declaration or ``vmstate_check`` refuses: state that a guest
could never have produced, which would otherwise crash or confuse the device."""

from __future__ import annotations

import pytest

from pemu.hw.pci.root_port import PCIeRootPort
from pemu.hw.virtio import mmio as r
from pemu.hw.virtio.device import (
    STATUS_ACKNOWLEDGE,
    STATUS_DRIVER,
    STATUS_FEATURES_OK,
    VIRTIO_F_VERSION_1,
)
from pemu.migration import MigrationError, load_device, save_device
from tests.hw.virtio_driver import make_machine
from tests.migration.scenarios import (
    AclintScenario,
    NvmeScenario,
    PlicScenario,
    RootPortScenario,
    SerialScenario,
    VirtioConsoleScenario,
    VirtioPCIScenario,
)
from tests.migration.streams import with_value


def refused(rig, dev, data: bytes, match: str) -> None:
    before = [save_device(d) for d in rig.devices]
    with pytest.raises(MigrationError, match=match):
        load_device(dev, data)
    assert [save_device(d) for d in rig.devices] == before


def test_plic_refuses_priorities_beyond_its_bits_and_sources_it_lacks():
    rig = PlicScenario().configured()
    plic = rig.devices[0]
    prio = list(plic.priority)
    prio[5] = 8  # 3 priority bits
    refused(rig, plic, with_value(plic, "priority", prio),
            r"priority: value 8 is out of range \(at most 7\)")
    prio = list(plic.priority)
    prio[0] = 1
    refused(rig, plic, with_value(plic, "priority", prio), "source 0 does not exist")
    refused(rig, plic, with_value(plic, "threshold", [0, 0, 9, 0]), "threshold: value 9")
    for name in ("pending_words", "claimed_words", "level_words"):
        refused(rig, plic, with_value(plic, name, [1, 0, 0]), f"{name}: bits set for sources")
    enables = list(plic.enable_words)
    enables[3 * 3] |= 1  # context 3, source 0
    refused(rig, plic, with_value(plic, "enable_words", enables), "context 3 enables")


def test_plic_with_fewer_sources_refuses_a_bigger_plics_state():
    from pemu.hw.intc.plic import PLIC

    small = PLIC(num_harts=2, num_sources=40)
    with pytest.raises(MigrationError, match=r"priority: 96 elements in the state, 40"):
        load_device(small, save_device(PlicScenario().configured().devices[0]))


def test_aclint_msip_is_one_bit_and_hart_count_must_match():
    rig = AclintScenario().configured()
    clint = rig.devices[0]
    refused(rig, clint, with_value(clint, "msip_bits", [0, 2]), "msip_bits: value 2")
    from pemu.hw.intc.aclint import ACLINT

    with pytest.raises(MigrationError, match="msip_bits: 2 elements in the state, 4"):
        load_device(ACLINT(4, use_timers=False), save_device(clint))


def test_serial_refuses_register_values_the_chip_cannot_hold():
    rig = SerialScenario().configured()
    uart = rig.devices[0]
    refused(rig, uart, with_value(uart, "ier", 0x10), "ier: value 16")
    refused(rig, uart, with_value(uart, "mcr", 0x20), "mcr: value 32")
    refused(rig, uart, with_value(uart, "fcr", 0x03), "fcr: 0x03 is not a value")
    refused(rig, uart, with_value(uart, "fcr", 0xC0), "fcr: 0xc0 is not a value")
    refused(rig, uart, with_value(uart, "rx_fifo_bytes", bytes(17)), "17 bytes, more than")


def test_serial_fifo_data_needs_the_fifo_on():
    rig = SerialScenario().configured()
    uart = rig.devices[0]
    uart.mmio_write(2, 1, 0)  # FIFO off: clears it
    uart.rx_fifo.extend(b"ab")  # what no guest could arrange
    refused(rig, uart, save_device(uart), "rx_fifo_bytes: data in the FIFO while")


def test_virtio_refuses_a_live_queue_it_would_not_have_let_go_live():
    rig = VirtioConsoleScenario().configured()
    transport = rig.devices[0]
    refused(rig, transport, with_value(transport, "queue_num", [3, 8]),
            "queue_ready: queue 0: size 3 is not a power of 2 in 1..128")
    refused(rig, transport, with_value(transport, "queue_num", [256, 8]),
            "queue_ready: queue 0: size 256")
    desc = list(transport.queue_desc)
    desc[1] += 8
    refused(rig, transport, with_value(transport, "queue_desc", desc), "queue 1: misaligned")
    desc[1] = 0x1000  # below RAM
    refused(rig, transport, with_value(transport, "queue_desc", desc), "queue 1: ring outside")


def test_virtio_queue_not_live_may_hold_any_size_the_register_took():
    rig = VirtioConsoleScenario().configured()
    transport = rig.devices[0]
    transport.mmio_write(r.QUEUE_SEL, 4, 1)
    transport.mmio_write(r.QUEUE_READY, 4, 0)  # not live ...
    transport.mmio_write(r.QUEUE_NUM, 4, 1000)  # ... so QueueNum takes anything
    data = save_device(transport)
    dst = VirtioConsoleScenario().fresh_like(rig).devices[0]
    load_device(dst, data)
    assert dst.queues[1].num == 1000 and not dst.queues[1].ready


def test_virtio_refuses_accepted_features_the_device_never_offered():
    rig = VirtioConsoleScenario().configured()
    transport = rig.devices[0]
    rogue = transport.driver_features | 1 << 50
    refused(rig, transport, with_value(transport, "driver_features", rogue),
            "driver_features: .* accepted")
    legacy = transport.driver_features & ~(1 << VIRTIO_F_VERSION_1)
    refused(rig, transport, with_value(transport, "driver_features", legacy), "accepted")


def test_virtio_features_before_features_ok_are_only_a_register():
    rig = VirtioConsoleScenario().configured()
    transport = rig.devices[0]
    data = with_value(transport, "status", STATUS_ACKNOWLEDGE | STATUS_DRIVER)
    assert transport.device.driver_features != 0  # negotiated by the scenario's driver
    load_device(transport, data)
    assert not transport.status & STATUS_FEATURES_OK
    assert transport.device.driver_features == 0  # nothing was negotiated


def test_virtio_state_of_another_device_type_is_refused():
    from pemu.hw.virtio.rng import VirtioRng

    rig = VirtioConsoleScenario().configured()
    _, rng_transport, _ = make_machine(VirtioRng())
    with pytest.raises(MigrationError, match=r"device_type: the state was saved with 3, .* 4"):
        load_device(rng_transport, save_device(rig.devices[0]))
    _, empty, _ = make_machine(None)
    with pytest.raises(MigrationError, match=r"device_type: .* saved with 3, .* has 0"):
        load_device(empty, save_device(rig.devices[0]))


def test_virtio_console_pending_input_is_bounded():
    rig = VirtioConsoleScenario().configured()
    console = rig.devices[1]
    assert console.pending_input == b"456789"
    refused(rig, console, with_value(console, "pending_input", bytes(4097)),
            "pending_input: 4097 bytes, more than the declared 4096")


def test_virtio_net_refuses_a_mac_and_table_no_driver_could_set():
    from tests.migration.scenarios import VirtioNetScenario

    rig = VirtioNetScenario().configured()
    nic = rig.devices[1]
    refused(rig, nic, with_value(nic, "mac", b"\x52\x54\x00"), r"mac: 3 bytes, not 6")
    refused(rig, nic, with_value(nic, "mac_table", b"\x01" * 7), "not whole MAC addresses")
    refused(rig, nic, with_value(nic, "multi_start", 5), "past the 2 entries")


def test_pci_functions_refuse_another_devices_state():
    rig = VirtioPCIScenario().configured()
    fn = rig.devices[1]
    config = bytearray(fn.config_bytes)
    config[2] ^= 1  # another device ID
    refused(rig, fn, with_value(fn, "config_bytes", bytes(config)), "another device")
    refused(rig, fn, with_value(fn, "config_bytes", fn.config_bytes[:0x100] + bytes(1)),
            "257 bytes of config space")
    refused(rig, fn, with_value(fn, "msix_table", fn.msix_table[:16]),
            "another vector count")
    transport = rig.devices[2]
    refused(rig, transport, with_value(transport, "queue_vectors", [0, 3]),
            "queue_vectors: vector 3: the function has no such MSI-X vector")


def test_root_port_refuses_a_card_it_does_not_have():
    rig = RootPortScenario().configured()
    port = rig.devices[1]
    empty = PCIeRootPort("rp0", slot=5)  # no card below it
    with pytest.raises(MigrationError, match="slot presence differs"):
        load_device(empty, save_device(port))


def test_nvme_refuses_queues_it_could_not_have_created():
    rig = NvmeScenario().configured()
    ctrl = rig.devices[1]
    bases = list(ctrl.sq_base)
    bases[1] = 0x1000  # not RAM
    refused(rig, ctrl, with_value(ctrl, "sq_base", bases), "sq_base: queue 1: ring outside")
    cqids = list(ctrl.sq_cqid)
    cqids[1] = 2
    refused(rig, ctrl, with_value(ctrl, "sq_cqid", cqids), "CQ 2, which does not exist")
    heads = list(ctrl.cq_head)
    heads[1] = 4
    refused(rig, ctrl, with_value(ctrl, "cq_head", heads), "queue 1: outside the ring")
    vectors = list(ctrl.cq_vector)
    vectors[1] = 5
    refused(rig, ctrl, with_value(ctrl, "cq_vector", vectors), "CQ 1: no vector 5")
    refused(rig, ctrl, with_value(ctrl, "cq_waiting", ctrl.cq_waiting[:-1]), "whole records")
