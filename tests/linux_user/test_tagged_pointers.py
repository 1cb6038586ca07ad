"""pemu-riscv64's tagged address ABI (pointer masking for U-mode, Supm): the prctl
calls as Linux 6.13+ implements them on riscv, loads/stores/atomics/vector loads
through tagged pointers, system calls untagging them, a thread inheriting the masking.

qemu-riscv64 7.2 has no pointer masking: it is the oracle only for what a CPU without
Supm does (``probe``: both calls fail with EINVAL; ``segv``: a tagged pointer faults).
"""

from __future__ import annotations

import errno
import signal

import pytest
from conftest import run_pemu, run_qemu

# what programs/tagged_pointers.c prints under Linux's rules (tagged_addr.py)
EINVAL, EFAULT, EBUSY = -errno.EINVAL, -errno.EFAULT, -errno.EBUSY
EXPECTED_ABI = f"""initial 0
pmlen17 {EINVAL}
enable-pmlen0 {EINVAL}
bad-bits {EINVAL}
arg3 {EINVAL}
mask-only 0
get 0x10000000
load 0x1122334455667788
write-without-abi {EFAULT}
pmlen5 0
get 0x7000001
store 0x1234
tagged write
write 13
pmlen8 0
get 0x10000001
amo 0x70 0x77
vector 0x77
cas 1 5
mprotect 0
munmap 0
thread 1
relock {EBUSY}
same 0
"""


@pytest.fixture(scope="module")
def program(build):
    return build("tagged_pointers", static=True)


def test_tagged_address_abi(program, tcg_backend) -> None:
    r = run_pemu("-cpu", "max", str(program), "abi", timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == EXPECTED_ABI


def test_supm_alone_is_enough(program) -> None:
    r = run_pemu("-cpu", "rv64,supm=on", str(program), "probe", timeout=60)
    assert r.stdout.decode() == "get 0\nset 0\n"


def test_without_supm_as_qemu(program, qemu) -> None:
    pemu = run_pemu(str(program), "probe", timeout=60)  # rv64: no pointer masking
    assert pemu.stdout.decode() == f"get {EINVAL}\nset {EINVAL}\n"
    assert pemu.stdout == run_qemu(str(program), "probe").stdout


def test_a_tagged_pointer_faults_without_the_prctl(program, qemu) -> None:
    r = run_pemu("-cpu", "max", str(program), "segv", timeout=60)
    assert r.returncode == -signal.SIGSEGV
    assert r.stdout == b"about to fault\n"
    q = run_qemu(str(program), "segv")
    assert q.returncode == r.returncode and q.stdout == r.stdout
