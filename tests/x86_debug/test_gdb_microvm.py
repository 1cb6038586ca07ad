"""Real gdb-multiarch against pemu-system-x86_64 -accel kvm -S -gdb: the long-mode guest
stopped before its first instruction, a breakpoint in the high alias, registers (core,
segment bases, control registers, SSE), memory through the guest's page tables, stepi,
continue from a breakpoint, detach; and a raw client for Ctrl-C and kill."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess

import pytest
from qemu.qmp import QMPClient

from pemu.accel.kvm.guest_debug_probe import probe_guest_debug
from pemu.gdbstub import packet as pk
from pemu.target.x86.cpu_modes import enter_long_mode
from tests.gdbstub.conftest import _listening
from tests.kvm.test_cpu_modes import host_kvm
from tests.x86_debug.conftest import COUNTER, HIGH, Pemu, free_port, wait_until


@pytest.fixture(scope="session")
def gdb() -> str:
    path = shutil.which("gdb-multiarch")
    if path is None:
        pytest.skip("gdb-multiarch is not installed")
    return path


@pytest.fixture(scope="session")
def guest_debug(kvm):
    support = probe_guest_debug(enter_long_mode)
    if not (support.single_step and support.hw_breakpoints):
        pytest.skip(f"this KVM's KVM_SET_GUEST_DEBUG cannot step or break: {support.reason}")
    return support


def _start(longmode, tmp_path, *extra: str) -> tuple[Pemu, int]:
    port = free_port()
    vm = Pemu("-S", "-kernel", str(longmode.image), "-serial", f"file:{tmp_path / 's.txt'}",
              "-gdb", f"tcp::{port}", *extra)
    wait_until(lambda: _listening(port) or vm.proc.poll() is not None, 30, "the gdb stub")
    assert vm.proc.poll() is None, vm.proc.stderr.read()
    return vm, port


def _qmp_status(sock) -> tuple[str, int]:
    async def go():
        c = QMPClient("microvm")
        await c.connect(str(sock))
        status = (await c.execute("query-status"))["status"]
        text = await c.execute("human-monitor-command",
                               {"command-line": f"xp /1xg {COUNTER:#x}"})
        await c.execute("quit")
        await c.disconnect()
        return status, int(text.split()[1], 16)
    return asyncio.run(asyncio.wait_for(go(), 30))


def test_gdb_attaches_steps_breaks_and_detaches(gdb, guest_debug, longmode, tmp_path):
    sym = longmode.symbols
    tick, after = HIGH + sym["tick"], HIGH + sym["after_tick"]
    sock = tmp_path / "qmp.sock"
    vm, port = _start(longmode, tmp_path, "-qmp", f"unix:{sock},server=on,wait=off")
    try:
        out = subprocess.run(
            [gdb, "-batch", "-nx", "-ex", "set architecture i386:x86-64",
             "-ex", f"target remote 127.0.0.1:{port}",
             "-ex", "info registers rip cs",
             "-ex", f"break *{tick:#x}", "-ex", "continue",
             "-ex", "info registers rip cr0 cr3 efer fs_base gs_base k_gs_base",
             "-ex", f"x/3xb {tick:#x}",
             "-ex", "stepi", "-ex", "info registers rip rdi",
             "-ex", f"set var *(long *){HIGH + COUNTER:#x} = 0x123456",
             "-ex", f"x/1xg {COUNTER:#x}",
             "-ex", "continue", "-ex", "info registers rip",
             "-ex", f"x/1xg {HIGH + COUNTER:#x}",
             "-ex", "continue", "-ex", "info registers rip",
             "-ex", f"x/1xg {HIGH + COUNTER:#x}",
             "-ex", "p $xmm0.uint128", "-ex", "p/x $mxcsr", "-ex", "p/x $fctrl",
             "-ex", "info threads",
             "-ex", "delete", "-ex", "detach"],
            capture_output=True, text=True, timeout=90)
        text = out.stdout + out.stderr
        # after detach the guest runs on: the counter moves past what gdb wrote
        status, counter = _qmp_status(sock)
        code, err = vm.finish()
    finally:
        vm.kill()
    entry = sym["_start"]
    rips = [int(x, 16) for x in re.findall(r"^rip\s+(0x[0-9a-f]+)", text, re.M)]
    assert rips[0] == entry, text  # -S: stopped at the multiboot entry, nothing ran
    assert re.search(r"^cs\s+0x8\s", text, re.M), text  # 32-bit code segment there
    assert f"Breakpoint 1, {tick:#x}" in text or rips[1] == tick, text
    assert rips[1] == tick, text
    assert re.search(r"^cr0\s+0x[0-9a-f]*8000001[0-9a-f]\b", text, re.M) or re.search(
        r"^cr0\s+0xe0000011", text, re.M), text
    assert re.search(r"^cr3\s+0x300000\s", text, re.M), text
    assert re.search(r"^efer\s+0x500\s", text, re.M), text
    assert re.search(r"^k_gs_base\s+0x0\s", text, re.M), text
    assert f"{tick:#x}:\t0x48\t0xff\t0x07" in text, text  # incq (%rdi), via the walk
    assert rips[2] == after, text  # one instruction
    assert re.search(rf"^rdi\s+{HIGH + COUNTER:#x}\s", text, re.M), text
    assert f"{COUNTER:#x}:\t0x0000000000123456" in text, text  # written via the alias
    assert rips[3] == tick, text  # back at the breakpoint, before the next incq
    assert f"{HIGH + COUNTER:#x}:\t0x0000000000123456" in text, text
    # continuing from the breakpoint itself: stepped off it, one incq, and back
    assert rips[4] == tick, text
    assert f"{HIGH + COUNTER:#x}:\t0x0000000000123457" in text, text
    assert re.search(r"^\$\d+ = 0\s*$", text, re.M), text
    assert "Thread 1" in text and "CPU#0" in text, text
    assert "Detaching from program" in text or "detached" in text.lower(), text
    assert status == "running" and counter > 0x123457
    assert code == 0, err


class RawGdb:
    """A minimal remote-protocol client (ack mode) for what gdb -batch cannot do."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""

    def send(self, payload: bytes) -> None:
        self.sock.sendall(pk.frame(payload))

    def reply(self) -> bytes:
        while True:
            self.buf = self.buf.lstrip(b"+")
            start = self.buf.find(b"$")
            end = self.buf.find(b"#", start)
            if start >= 0 and end >= 0 and len(self.buf) >= end + 3:
                payload = self.buf[start + 1:end]
                self.buf = self.buf[end + 3:]
                self.sock.sendall(b"+")
                return payload
            data = self.sock.recv(4096)
            if not data:
                raise EOFError("stub closed the connection")
            self.buf += data

    def ask(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.reply()


def test_ctrl_c_then_kill(gdb, guest_debug, longmode, tmp_path):
    vm, port = _start(longmode, tmp_path)
    try:
        c = RawGdb(port)
        assert c.ask(b"qSupported").startswith(b"PacketSize=")
        xml = c.ask(b"qXfer:features:read:target.xml:0,fff")
        assert b"<architecture>i386:x86-64</architecture>" in xml
        assert c.ask(b"qfThreadInfo") == b"m1"
        c.send(b"c")
        wait_until(lambda: (tmp_path / "s.txt").exists()
                   and "long mode" in (tmp_path / "s.txt").read_text(), 20, "the guest")
        c.sock.sendall(b"\x03")
        assert c.reply().startswith(b"T02")
        regs = bytes.fromhex(c.ask(b"g").decode())
        rip = int.from_bytes(regs[16 * 8:17 * 8], "little")
        assert rip >> 47 == 0x1FFFF  # interrupted in the high alias
        assert c.ask(b"p10") == regs[16 * 8:17 * 8].hex().encode()  # rip via p
        # a watch length x86 cannot do; or no data breakpoints on this KVM at all
        assert c.ask(b"Z2,1000,3") == (b"E16" if guest_debug.hw_watchpoints else b"")
        assert c.ask(b"Z3,1000,8") == b""  # read-only watchpoints: not on x86
        c.send(b"k")
        code, err = vm.finish()
    finally:
        vm.kill()
    assert code == 0, err


def test_write_watchpoint(guest_debug, longmode, tmp_path):
    if not guest_debug.hw_watchpoints:
        pytest.skip(f"this KVM ignores debug-register watchpoints: {guest_debug.reason}")
    vm, port = _start(longmode, tmp_path)
    try:
        c = RawGdb(port)
        assert c.ask(b"Z2,%x,8" % (HIGH + COUNTER)) == b"OK"
        c.send(b"c")
        assert c.reply() == b"T05watch:%x;thread:1;" % (HIGH + COUNTER)
        c.send(b"k")
        code, err = vm.finish()
    finally:
        vm.kill()
    assert code == 0, err


# the probe's name for each feature -> its GuestDebugSupport field
FEATURES = {"single step": "single_step", "hardware breakpoint": "hw_breakpoints",
            "hardware watchpoint": "hw_watchpoints", "int3 software breakpoint": "sw_breakpoints"}


def test_probe_names_what_is_missing():
    host = host_kvm()
    support = probe_guest_debug(enter_long_mode)
    works = {name for name, field in FEATURES.items() if getattr(support, field)}
    if host in ("absent", "unopenable"):
        assert works == set()
        assert support.reason.startswith("/dev/kvm does not exist" if host == "absent"
                                         else "/dev/kvm: ")
        return
    # the reason is "what: why; ..." for exactly the features that failed
    if works == set(FEATURES):
        assert support.reason == "everything works"
        missing = {}
    else:
        parts = support.reason.split("; ")
        assert all(": " in part for part in parts), support.reason
        missing = dict(part.split(": ", 1) for part in parts)
        assert set(missing) == set(FEATURES) - works
        assert all(missing.values())
    if host in ("kvm_intel", "kvm_amd"):
        assert works == set(FEATURES), support.reason
    elif host == "kvm_pvm":  # measured in docs/GDBSTUB.md
        assert works == {"single step", "hardware breakpoint"}, support.reason
        assert missing["hardware watchpoint"] == "the guest ran on to its hlt without a debug exit"
        int3 = missing["int3 software breakpoint"]
        assert "emulation failure" in int3 and "instruction bytes: cc f4" in int3
    else:
        pytest.skip(f"no known verdict for this host's KVM ({host}): {support}")
