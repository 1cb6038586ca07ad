"""The DTB writer, checked by the real dtc (device-tree-compiler)."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from pemu.fdt import FDT, FDTError

pytestmark = pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc not installed")


def dtc(data: bytes, in_fmt: str, out_fmt: str) -> bytes:
    res = subprocess.run(["dtc", "-q", "-I", in_fmt, "-O", out_fmt, "-"], input=data,
                         capture_output=True, check=False)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout


def sample_tree() -> FDT:
    fdt = FDT()
    root = fdt.root
    root.set_u32("#address-cells", 2).set_u32("#size-cells", 2)
    root.set_string("compatible", "riscv-virtio")
    root.set_string("model", "riscv-virtio,qemu")
    chosen = root.add_node("chosen")
    chosen.set_string("bootargs", "console=ttyS0 root=/dev/vda")
    chosen.set_string("stdout-path", "/soc/serial@10000000")
    mem = root.add_node("memory@80000000")
    mem.set_string("device_type", "memory")
    mem.set_u64("reg", 0x80000000, 0x8000000)
    cpus = root.add_node("cpus")
    cpus.set_u32("#address-cells", 1).set_u32("#size-cells", 0)
    cpus.set_u32("timebase-frequency", 10_000_000)
    cpu = cpus.add_node("cpu@0")
    cpu.set_string("device_type", "cpu").set_u32("reg", 0)
    cpu.set_string("riscv,isa", "rv64imafdc")
    intc = cpu.add_node("interrupt-controller")
    intc.set_u32("#interrupt-cells", 1).set_empty("interrupt-controller")
    intc.set_string("compatible", "riscv,cpu-intc")
    soc = root.add_node("soc")
    soc.set_u32("#address-cells", 2).set_u32("#size-cells", 2)
    soc.set_string("compatible", "simple-bus").set_empty("ranges")
    plic = soc.add_node("plic@c000000")
    plic.set_string("compatible", "sifive,plic-1.0.0", "riscv,plic0")
    plic.set_u32("interrupts-extended", intc.phandle(), 11, intc.phandle(), 9)
    plic.set_cells("reg", [(0, 1), (0x0C000000, 1), (0, 1), (0x600000, 1)])
    uart = soc.add_node("serial@10000000")
    uart.set_u32("interrupt-parent", plic.phandle()).set_u32("interrupts", 10)
    uart.set_bytes("blob", bytes([1, 2, 3]))
    fdt.add_reservation(0x80000000, 0x80000)
    return fdt


EXPECTED_DTS = """
/memreserve/ 0x80000000 0x80000;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    compatible = "riscv-virtio";
    model = "riscv-virtio,qemu";
    chosen {
        bootargs = "console=ttyS0 root=/dev/vda";
        stdout-path = "/soc/serial@10000000";
    };
    memory@80000000 {
        device_type = "memory";
        reg = <0x0 0x80000000 0x0 0x8000000>;
    };
    cpus {
        #address-cells = <1>;
        #size-cells = <0>;
        timebase-frequency = <10000000>;
        cpu@0 {
            device_type = "cpu";
            reg = <0>;
            riscv,isa = "rv64imafdc";
            interrupt-controller {
                #interrupt-cells = <1>;
                interrupt-controller;
                compatible = "riscv,cpu-intc";
                phandle = <1>;
            };
        };
    };
    soc {
        #address-cells = <2>;
        #size-cells = <2>;
        compatible = "simple-bus";
        ranges;
        plic@c000000 {
            compatible = "sifive,plic-1.0.0", "riscv,plic0";
            interrupts-extended = <1 11 1 9>;
            reg = <0x0 0xc000000 0x0 0x600000>;
            phandle = <2>;
        };
        serial@10000000 {
            interrupt-parent = <2>;
            interrupts = <10>;
            blob = [01 02 03];
        };
    };
};
"""


def test_dtc_decompiles_to_the_same_tree():
    blob = sample_tree().to_bytes()
    ours = dtc(blob, "dtb", "dts")
    # The expectation goes through dtc too, so both sides have dtc's formatting.
    theirs = dtc(dtc(("/dts-v1/;\n" + EXPECTED_DTS).encode(), "dts", "dtb"), "dtb", "dts")
    assert ours.decode() == theirs.decode()


def test_header_and_blocks_are_well_formed():
    blob = sample_tree().to_bytes()
    (magic, total, off_struct, off_strings, off_rsv, version, last_comp, boot, size_strings,
     size_struct) = struct.unpack(">10I", blob[:40])
    assert magic == 0xD00DFEED and total == len(blob)
    assert (version, last_comp, boot) == (17, 16, 0)
    assert off_rsv % 8 == 0 and off_struct % 4 == 0
    assert off_struct + size_struct == off_strings and off_strings + size_strings == total
    assert struct.unpack(">QQ", blob[off_rsv:off_rsv + 16]) == (0x80000000, 0x80000)
    # dtc's own checker accepts it as input and re-emits an identical tree.
    assert dtc(dtc(blob, "dtb", "dtb"), "dtb", "dts") == dtc(blob, "dtb", "dts")


def test_property_names_deduplicated_in_strings_block():
    blob = sample_tree().to_bytes()
    off_strings, size_strings = struct.unpack(">I", blob[12:16])[0], struct.unpack(
        ">I", blob[32:36])[0]
    names = blob[off_strings:off_strings + size_strings].split(b"\0")[:-1]
    assert len(names) == len(set(names))
    assert b"compatible" in names


def test_find_and_errors():
    fdt = sample_tree()
    assert fdt.find("/soc/serial@10000000").props["interrupts"] == b"\0\0\0\x0a"
    assert fdt.find("/").path == "/"
    assert fdt.find("/cpus/cpu@0").path == "/cpus/cpu@0"
    with pytest.raises(FDTError):
        fdt.find("/nope")
    with pytest.raises(FDTError, match="already exists"):
        fdt.root.add_node("soc")
    with pytest.raises(FDTError, match="invalid node name"):
        fdt.root.add_node("bad name")
    with pytest.raises(FDTError, match="32 bits"):
        fdt.root.set_u32("x", 1 << 32)
    with pytest.raises(FDTError, match="NUL"):
        fdt.root.set_string("x", "a\0b")
    with pytest.raises(FDTError):
        fdt.add_reservation(0, 0)


def test_empty_tree():
    blob = FDT().to_bytes()
    assert b"/ {\n};" in dtc(blob, "dtb", "dts")
