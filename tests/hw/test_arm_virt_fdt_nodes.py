"""The Arm virt device nodes, decoded back by dtc as Linux's drivers will read them."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pemu.fdt.writer import FDT
from pemu.hw.arm import virt_fdt_nodes as n

pytestmark = pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc not installed")


def decompile(fdt: FDT) -> str:
    res = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", "-"], input=fdt.to_bytes(),
                         capture_output=True, check=True)
    return res.stdout.decode()


def board(gic_version: int, num_cpus: int = 2) -> str:
    fdt = FDT()
    root = fdt.root
    root.set_u32("#address-cells", 2)
    root.set_u32("#size-cells", 2)
    second = (0x080A_0000, 0x20000 * num_cpus) if gic_version == 3 else (0x0801_0000, 0x10000)
    gic = n.add_gic_node(root, gic_version, (0x0800_0000, 0x10000), second)
    root.set_u32("interrupt-parent", gic.phandle())
    clock = n.add_apb_clock_node(root)
    n.add_pl011_node(root, 0x0900_0000, 0x1000, 33, clock)
    n.add_pl031_node(root, 0x0901_0000, 0x1000, 34, clock)
    n.add_timer_node(root, gic_version, num_cpus)
    return decompile(fdt)


def node(dts: str, name: str) -> str:
    match = re.search(r"\b" + re.escape(name) + r" \{(.*?)\n\t\};", dts, re.S)
    assert match, f"{name} missing from:\n{dts}"
    return match.group(1)


def test_gicv3_node():
    intc = node(board(3), "intc@8000000")
    assert 'compatible = "arm,gic-v3";' in intc
    assert "#interrupt-cells = <0x03>;" in intc
    assert "interrupt-controller;" in intc
    assert "reg = <0x00 0x8000000 0x00 0x10000 0x00 0x80a0000 0x00 0x40000>;" in intc
    assert "#redistributor-regions = <0x01>;" in intc


def test_gicv2_node_and_timer_cpu_mask():
    dts = board(2, num_cpus=2)
    intc = node(dts, "intc@8000000")
    assert 'compatible = "arm,cortex-a15-gic";' in intc
    assert "reg = <0x00 0x8000000 0x00 0x10000 0x00 0x8010000 0x00 0x10000>;" in intc
    timer = node(dts, "timer")
    assert ("interrupts = <0x01 0x0d 0x304 0x01 0x0e 0x304 0x01 0x0b 0x304 "
            "0x01 0x0a 0x304>;") in timer


def test_timer_pl011_pl031_on_gicv3():
    dts = board(3)
    timer = node(dts, "timer")
    assert 'compatible = "arm,armv8-timer\\0arm,armv7-timer";' in timer
    assert "interrupts = <0x01 0x0d 0x04 0x01 0x0e 0x04 0x01 0x0b 0x04 0x01 0x0a 0x04>;" \
        in timer
    assert "always-on;" in timer
    clock = node(dts, "apb-pclk")
    phandle = re.search(r"phandle = <(0x[0-9a-f]+)>;", clock).group(1)
    assert "clock-frequency = <0x16e3600>;" in clock
    uart = node(dts, "pl011@9000000")
    assert 'compatible = "arm,pl011\\0arm,primecell";' in uart
    assert "interrupts = <0x00 0x01 0x04>;" in uart
    assert f"clocks = <{phandle} {phandle}>;" in uart
    assert 'clock-names = "uartclk\\0apb_pclk";' in uart
    rtc = node(dts, "pl031@9010000")
    assert 'compatible = "arm,pl031\\0arm,primecell";' in rtc
    assert "interrupts = <0x00 0x02 0x04>;" in rtc
    assert "reg = <0x00 0x9010000 0x00 0x1000>;" in rtc


def test_bad_arguments():
    with pytest.raises(ValueError):
        n.spi_cells(31)
    with pytest.raises(ValueError):
        n.add_gic_node(FDT().root, 4, (0, 1), (0, 1))
