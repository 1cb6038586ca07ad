"""The Arm virt board's device plumbing, compared with ``qemu-system-aarch64 -M virt``:
the 32 virtio-mmio slots with ``-device virtio-*-device`` (a bare-metal probe of each
slot's magic, version, device and vendor id), the PCIe host through its ECAM with
``-device virtio-*-pci`` (a bare-metal walk of config space: ids, BARs and their
sizes, MSI-X and the virtio capabilities, then BARs assigned and read through the
32-bit window), and MSIs through the GICv2m frame (a bare-metal program writing
INTIDs to MSI_SETSPI_NS), all byte for byte on the UART; INTx of each slot reaching
the SPI the interrupt-map names (in process); and the device tree of the same
command line (``dumpdtb``), node by node with phandles compared by the node they name.

QEMU's virtio-pci devices are transitional by default; pemu's are modern only, so
both run QEMU's ``-non-transitional`` names (pemu takes them as aliases).  QEMU's
virtio-mmio is legacy (version 1) by default; pemu's is version 2, as QEMU's with
``virtio-mmio.force-legacy=false``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pemu.hw import all_types  # noqa: F401 - the device types -device names
from pemu.hw.arm.memmap import SPI_BASE
from pemu.hw.arm.virt import ArmVirtBoard
from pemu.hw.pci.bus import PCI_BUS
from pemu.hw.virtio.from_config import VIRTIO_BUS, close_backends, make_virtio_devices
from pemu.qemuopts.config import SystemConfig
from tests.aarch64.system.bare_metal import assemble, need
from tests.system.test_virt_aia_dtb import parse_dts

QEMU = "qemu-system-aarch64"
TIMEOUT_S = 60
MMIO_DEVICES = ["-device", "virtio-rng-device", "-netdev", "user,id=n0",
                "-device", "virtio-net-device,netdev=n0", "-device", "virtio-rng-device"]
PCI_DEVICES = ["-device", "virtio-rng-pci-non-transitional", "-netdev", "user,id=n1",
               "-device", "virtio-net-pci-non-transitional,netdev=n1"]
COMMON = ["-cpu", "cortex-a57", "-nographic", "-no-reboot"]

# Nodes of QEMU's tree for devices pemu's virt does not build (flash, fw-cfg, the
# PL061 GPIO and its power key, the platform bus for dynamic sysbus devices, the PMU)
# or does not describe (the cpu-map topology); /chosen's random seeds differ per run.
QEMU_ONLY_NODES = ("/flash@0", "/fw-cfg@9020000", "/gpio-keys", "/pl061@9030000",
                   "/platform-bus@c000000", "/pmu", "/cpus/cpu-map")
UNSEEDED = {"/chosen": {"rng-seed", "kaslr-seed"}}
# phandle cells: which cells of a property hold one (index within each entry, stride)
PHANDLE_CELLS = {"interrupt-parent": (0, 1), "clocks": (0, 1), "msi-map": (1, 4),
                 "interrupt-map": (4, 10)}


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("a64io")
    return {name: assemble(out, f"{name}.S")
            for name in ("virtio_mmio_probe", "pci_ecam_walk", "gicv2m_msi")}


def run_qemu(*args: str) -> bytes:
    need(QEMU)
    return subprocess.run([QEMU, "-M", "virt", *COMMON, *args], capture_output=True,
                          timeout=TIMEOUT_S, check=True).stdout


def run_pemu(*args: str, machine: str = "virt") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pemu.cli.system_aarch64", "-M", machine,
                           *COMMON, *args], capture_output=True, timeout=TIMEOUT_S)


def test_virtio_mmio_slots_as_qemu(programs) -> None:
    args = ["-kernel", str(programs["virtio_mmio_probe"]), *MMIO_DEVICES]
    qemu = run_qemu("-global", "virtio-mmio.force-legacy=false", *args)
    lines = qemu.decode().splitlines()
    assert len(lines) == 32 and all(" 0000000074726976 " in line for line in lines)
    # the first -device in the highest slot: rng (4), net (1), rng (4) from slot 31 down
    assert [line.split()[3][-2:] for line in lines[29:]] == ["04", "01", "04"]
    result = run_pemu(*args)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == qemu


def test_pcie_ecam_walk_as_qemu(programs) -> None:
    args = ["-kernel", str(programs["pci_ecam_walk"]), *PCI_DEVICES]
    qemu = run_qemu(*args)
    text = qemu.decode()
    assert text.startswith("0000000000000000 0000000000081b36 ")  # the host bridge
    assert "0000000000000008 0000000010441af4 " in text  # virtio-rng in slot 1
    assert "0000000000000010 0000000010411af4 " in text  # virtio-net in slot 2
    assert "000000000000000c 00000000ffffc00c " in text  # a 16 KiB 64-bit BAR sized
    result = run_pemu(*args)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == qemu


def _translated(log: str) -> set[tuple[str, str]]:
    """(address, instruction word) of each line of a ``-d in_asm`` log."""
    return set(re.findall(r"^(0x[0-9a-f]+):\s+([0-9a-f]{8})\s", log, re.M))


def test_gicv2m_msis_as_qemu(programs) -> None:
    """The GICv2m frame that PCIe MSIs reach on the default (GICv2) virt; with
    ``-d in_asm`` on both, which shows capstone's A64 and the same instructions
    translated (QEMU 7.2's capstone 4 spells some aliases differently: movz/mov)."""
    args = ["-kernel", str(programs["gicv2m_msi"]), "-d", "in_asm"]
    need(QEMU)
    qemu = subprocess.run([QEMU, "-M", "virt", *COMMON, *args], capture_output=True,
                          timeout=TIMEOUT_S, check=True)
    assert qemu.stdout.decode().split("\n")[:4] == ["0000000000500040 ",  # INTIDs 80.., 64
                                                    "IRQ 0000000000000050 ",
                                                    "IRQ 000000000000008f ", "none"]
    result = run_pemu(*args)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == qemu.stdout
    log = result.stderr.decode()
    assert re.search(r"^0x[0-9a-f]+:\s+b9400a60\s+ldr w0, \[x19, #8\]$", log, re.M), log[:800]
    assert "msr vbar_el1, x0" in log
    assert _translated(log) == _translated(qemu.stderr.decode())


def _with_node_names(nodes: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Each phandle cell replaced by the name of the node it points at (pemu numbers
    its phandles from 1, QEMU from 0x8000)."""
    names = {int(p["phandle"].strip("<>"), 16): path for path, p in nodes.items()
             if "phandle" in p}
    out = {}
    for path, props in nodes.items():
        q = {k: v for k, v in props.items() if k != "phandle"}
        for prop, (first, stride) in PHANDLE_CELLS.items():
            if prop in q:
                cells = re.findall(r"0x[0-9a-f]+", q[prop])
                q[prop] = " ".join(names[int(c, 16)] if i % stride == first else c
                                   for i, c in enumerate(cells))
        out[path] = q
    return out


def _dts(dtb: Path) -> dict[str, dict[str, str]]:
    text = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True,
                          text=True, check=True).stdout
    return _with_node_names(parse_dts(text))


# (machine options, QEMU-only nodes/properties besides the ones every tree has): with
# gic-version=3 QEMU has a GICv3 ITS for MSIs, which pemu does not build yet, so its
# PCIe host has no msi-map either (devices use INTx)
TREES = {"highmem=on": (set(), set()), "highmem=off": (set(), set()),
         "gic-version=3": ({"/intc@8000000/its@8080000"}, {("/pcie@10000000", "msi-map")})}


@pytest.mark.parametrize("options", list(TREES))
def test_device_tree_as_qemu(tmp_path, options: str) -> None:
    """(No -kernel: QEMU's dumpdtb needs none either.)"""
    need("dtc")
    need(QEMU)
    ours, theirs = tmp_path / "pemu.dtb", tmp_path / "qemu.dtb"
    devices = [*MMIO_DEVICES, *PCI_DEVICES]
    subprocess.run([QEMU, "-M", f"virt,{options},dumpdtb={theirs}", *COMMON, *devices],
                   capture_output=True, timeout=TIMEOUT_S, check=True)
    result = run_pemu(*devices, machine=f"virt,{options},dumpdtb={ours}")
    assert result.returncode == 0, result.stderr.decode()
    p, q = _dts(ours), _dts(theirs)
    only_nodes, only_props = TREES[options]
    for path in list(q):
        if path.startswith(QEMU_ONLY_NODES) or path in only_nodes:
            del q[path]
    for path, prop in only_props:
        del q[path][prop]
    for path, props in UNSEEDED.items():
        q[path] = {k: v for k, v in q[path].items() if k not in props}
    assert sorted(p) == sorted(q)
    for path in q:
        assert p[path] == q[path], path
    assert sum(path.startswith("/virtio_mmio@") for path in p) == 32
    pcie = p["/pcie@10000000"]
    ecam = "<0x00 0x3f000000 0x00 0x1000000>" if options == "highmem=off" else \
        "<0x40 0x10000000 0x00 0x10000000>"
    assert pcie["reg"] == ecam
    if options != "gic-version=3":
        assert pcie["msi-map"] == "0x00 /intc@8000000/v2m@8020000 0x00 0x10000"


def test_intx_reaches_the_spi_the_device_tree_names(programs) -> None:
    """In process: a PCI function in each of slots 4..7 raises INTA; the GIC's input
    that goes up is the one the generated interrupt-map gives for that slot and pin
    (the swizzle over SPIs 3..6)."""
    need("dtc")
    slots = range(4, 8)
    cfg = SystemConfig(kernel=str(programs["virtio_mmio_probe"]), cpu="cortex-a57",
                       machine={"type": "virt"},
                       devices=[{"driver": "virtio-rng-pci", "addr": f"{s:#x}", "id": f"r{s}"}
                                for s in slots])
    board = ArmVirtBoard(cfg)
    closers = make_virtio_devices(board, cfg, "test", "virt", [VIRTIO_BUS, PCI_BUS])
    try:
        board.reset()
        text = subprocess.run(["dtc", "-I", "dtb", "-O", "dts"], input=board.device_tree(),
                              capture_output=True, check=True).stdout.decode()
        imap = [int(c, 16) for c in re.findall(r"0x[0-9a-f]+", parse_dts(text)[
            "/pcie@10000000"]["interrupt-map"])]
        entries = {(imap[i] >> 11, imap[i + 3]): imap[i + 8] for i in range(0, len(imap), 10)}
        for function in board.pci.devices():
            if function.slot not in slots:
                continue
            spi = entries[(function.slot % 4, 1)]  # pin 1 = INTA
            core = board.gic.core
            assert not core.level.test(0, SPI_BASE + spi)
            function.set_irq(True)
            assert core.level.test(0, SPI_BASE + spi), (function.slot, spi)
            function.set_irq(False)
            assert not core.level.test(0, SPI_BASE + spi)
        assert sorted(entries[(s % 4, 1)] for s in slots) == [3, 4, 5, 6]
    finally:
        close_backends(closers)
