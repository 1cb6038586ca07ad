"""``-M virt,aia=...``: pemu's device tree describes the APLIC domains, the IMSICs and
the wiring of the board's devices as QEMU's does (QEMU's ``dumpdtb`` is the oracle),
phandles compared by the node they name."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"
AIA_NODES = ("aplic@c000000", "aplic@d000000", "imsics@24000000", "imsics@28000000")
WIRED = ("serial@10000000", "rtc@101000", "virtio_mmio@10001000", "virtio_mmio@10008000")
# QEMU 7.2 spells the delegation property "riscv,delegate" only; pemu writes the
# binding's "riscv,delegation" too, as QEMU 9.1 and later do.
PEMU_ONLY = {"riscv,delegation"}


def parse_dts(text: str) -> dict[str, dict[str, str]]:
    """node path -> {property: value text} of dtc's output."""
    nodes: dict[str, dict[str, str]] = {}
    path: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith("{"):
            name = line[:-1].strip()
            path.append("" if name == "/" else name)
            nodes["/".join(path) or "/"] = {}
        elif line == "};":
            path.pop()
        elif line.endswith(";") and path:
            name, _, value = line[:-1].partition(" = ")
            nodes["/".join(path) or "/"][name] = value
    return nodes


def resolve_phandles(nodes: dict[str, dict[str, str]], props: tuple[str, ...]
                     ) -> dict[str, dict[str, str]]:
    """The same tree with phandle cells of ``props`` replaced by the node names (every
    cell that is some node's phandle, in the properties that hold phandles)."""
    by_phandle = {int(p["phandle"].strip("<>"), 16): path.rsplit("/", 1)[-1]
                  for path, p in nodes.items() if "phandle" in p}
    out = {}
    for path, p in nodes.items():
        q = {k: v for k, v in p.items() if k != "phandle"}
        for k in props:
            if k in q:
                cells = [int(c, 16) for c in re.findall(r"0x[0-9a-f]+", q[k])]
                q[k] = " ".join(by_phandle.get(c, hex(c)) if i % 2 == 0 or k == "msi-parent"
                                else hex(c) for i, c in enumerate(cells))
        out[path] = q
    return out


PHANDLE_PROPS = ("interrupts-extended", "msi-parent", "interrupt-parent", "riscv,children",
                 "riscv,delegate", "riscv,delegation")


def dump(dtb: Path) -> dict[str, dict[str, str]]:
    dts = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True,
                         text=True, check=True).stdout
    return resolve_phandles(parse_dts(dts), PHANDLE_PROPS)


@pytest.mark.parametrize("aia", ["aplic", "aplic-imsic"])
def test_aia_nodes_match_qemu(tmp_path, aia, build_program):
    if not (shutil.which("dtc") and shutil.which(QEMU)):
        pytest.skip(f"needs dtc and {QEMU}")
    ours, theirs = tmp_path / "pemu.dtb", tmp_path / "qemu.dtb"
    r = run_pemu("-M", f"virt,aia={aia},dumpdtb={ours}", "-smp", "2", "-bios", "none",
                 "-kernel", str(build_program("finisher_fail")), timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    subprocess.run([QEMU, "-M", f"virt,aia={aia},dumpdtb={theirs}", "-smp", "2"],
                   capture_output=True, check=True, timeout=60)
    p, q = dump(ours), dump(theirs)
    names = AIA_NODES if aia == "aplic-imsic" else AIA_NODES[:2]
    for node in names:
        mine, qemu = p[f"/soc/{node}"], q[f"/soc/{node}"]
        assert {k: v for k, v in mine.items() if k not in PEMU_ONLY} == qemu, node
        if "riscv,delegate" in mine:
            assert mine["riscv,delegation"] == mine["riscv,delegate"]
    assert not any("imsics" in path for path in p) or aia == "aplic-imsic"
    assert not any("plic@" in path.replace("aplic@", "") for path in p)
    for node in WIRED:
        for prop in ("interrupt-parent", "interrupts"):
            assert p[f"/soc/{node}"][prop] == q[f"/soc/{node}"][prop], (node, prop)
    # Smaia/Ssaia in the ISA string exactly where QEMU has them
    isa = p["/cpus/cpu@0"]["riscv,isa"]
    assert ("_smaia_ssaia_" in isa) == ("_smaia_ssaia_" in q["/cpus/cpu@0"]["riscv,isa"])
