"""AIA guest interrupt files (``-M virt,aia=aplic-imsic,aia-guests=N`` with
``-cpu rv64,h=true``): hgeie/hgeip, hstatus.VGEIN, vsiselect/vsireg, vstopei and a VS
guest taking a guest file's interrupt, bare metal (``aia_guest.S``), on pemu's two
backends and on QEMU 7.2; and the board's side: the guest files' pages, the device
tree's ``riscv,guest-index-bits``, VGEIN's legal values."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pemu.hw.intc.imsic import ImsicFile, ImsicPages, guest_index_bits, hart_pages
from tests.system.conftest import run_pemu
from tests.system.test_virt_aia_dtb import dump

QEMU = "qemu-system-riscv64"
MACHINE = "virt,aia=aplic-imsic,aia-guests=2"


def test_guest_files_on_pemu(build_program, tcg_backend):
    r = run_pemu("-M", MACHINE, "-cpu", "rv64,h=true", "-bios", "none", "-nographic",
                 "-kernel", str(build_program("aia_guest")), timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


def test_one_guest_file_is_one_hgeie_bit(build_program):
    # GEILEN follows aia-guests: the program's first check (hgeie == 0b110) fails
    r = run_pemu("-M", "virt,aia=aplic-imsic,aia-guests=1", "-cpu", "rv64,h=true",
                 "-bios", "none", "-nographic",
                 "-kernel", str(build_program("aia_guest")), timeout=120)
    assert r.returncode == 1, r.stderr.decode()


def test_qemu_agrees_with_the_program(build_program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    r = subprocess.run([QEMU, "-M", MACHINE, "-cpu", "rv64,h=true", "-bios", "none",
                        "-nographic", "-kernel", str(build_program("aia_guest"))],
                       capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode} failed"


def test_guest_file_pages_follow_each_harts_s_file():
    # 3 guests: 4 files a hart, 2 guest index bits, hart 1's pages start at 0x4000
    files = [ImsicFile() for _ in range(2 * 4)]
    for f in files:
        f.write_indirect(0xC0, 1 << 7)
    pages = ImsicPages(files, machine_level=False, files_per_hart=4)
    assert guest_index_bits(3) == 2 and hart_pages(4) == 4
    assert pages.region_size == 2 * 4 * 0x1000
    pages.mmio_write(0x4000 + 2 * 0x1000, 4, 7)  # hart 1, guest file 2
    assert [f.eip for f in files] == [0] * 6 + [1 << 7, 0]
    pages.mmio_write(0x3000, 4, 7)  # hart 0, guest file 3
    assert files[3].eip == 1 << 7
    # 2 guests: 3 files in 4 pages; the fourth page is no file's
    files = [ImsicFile() for _ in range(3)]
    pages = ImsicPages(files, machine_level=False, files_per_hart=3)
    pages.mmio_write(0x3000, 4, 7)
    assert all(f.eip == 0 for f in files)


def test_device_tree_names_the_guest_index_bits(tmp_path):
    if not (shutil.which("dtc") and shutil.which(QEMU)):
        pytest.skip(f"needs dtc and {QEMU}")
    ours, theirs = tmp_path / "pemu.dtb", tmp_path / "qemu.dtb"
    machine = "virt,aia=aplic-imsic,aia-guests=3"
    r = run_pemu("-M", f"{machine},dumpdtb={ours}", "-cpu", "rv64,h=true", "-smp", "2",
                 "-nographic", timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    subprocess.run([QEMU, "-M", f"{machine},dumpdtb={theirs}", "-cpu", "rv64,h=true",
                    "-smp", "2"], capture_output=True, check=True, timeout=60)
    p, q = dump(ours), dump(theirs)
    for node in ("/soc/imsics@24000000", "/soc/imsics@28000000"):
        assert p[node] == q[node], node
    assert p["/soc/imsics@28000000"]["riscv,guest-index-bits"] == "<0x02>"
    assert p["/soc/imsics@28000000"]["reg"] == "<0x00 0x28000000 0x00 0x8000>"


def test_vgein_holds_only_guest_file_numbers():
    from types import SimpleNamespace

    from pemu.target.riscv.csr_hyp import _write_hstatus
    from pemu.target.riscv.hyp import HypState

    hyp = HypState()
    hyp.geilen = 2
    ps = SimpleNamespace(has_h=True, hyp=hyp, recheck_interrupts=lambda: None,
                         pm_extensions=frozenset())  # no pointer masking: HUPMM reads 0
    env = SimpleNamespace(ps=ps)
    _write_hstatus(env, 2 << 12)
    assert hyp.vgein == 2
    _write_hstatus(env, 3 << 12)  # no file 3: VGEIN keeps its value (WLRL)
    assert hyp.vgein == 2
    _write_hstatus(env, 0)
    assert hyp.vgein == 0
