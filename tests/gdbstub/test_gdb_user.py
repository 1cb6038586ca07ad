"""Real gdb-multiarch against pemu-riscv64 -g: breakpoints, registers, memory, stepi,
watchpoints, threads, detach; and a raw protocol client for what gdb -batch cannot do
(Ctrl-C, no-ack mode, bad checksums, kill)."""

from __future__ import annotations

import re
import socket
import subprocess
import time

from pemu.gdbstub.packet import Packet, PacketReader, frame

from .conftest import Debuggee


def _run_gdb(gdb: str, program, port: int, commands: list[str]) -> str:
    args = [gdb, "-batch", "-nx", "-ex", "set architecture riscv:rv64",
            "-ex", f"target remote 127.0.0.1:{port}"]
    for c in commands:
        args += ["-ex", c]
    result = subprocess.run(args + [str(program)], capture_output=True, text=True, timeout=120)
    return result.stdout + result.stderr


def _insn_word(program, addr: int) -> int:
    """The instruction bytes at ``addr`` in the ELF, through binutils (an oracle)."""
    out = subprocess.run(["riscv64-linux-gnu-objdump", "-d", f"--start-address={addr:#x}",
                          f"--stop-address={addr + 4:#x}", str(program)],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(rf"^\s*{addr:x}:\s+([0-9a-f]+)", out, re.M)
    assert m, out
    return int(m.group(1), 16)


def test_gdb_breakpoint_registers_memory_step_watch_detach(gdb, program):
    target = Debuggee(program)
    try:
        out = _run_gdb(gdb, program, target.port, [
            "info registers pc",
            "break add_up",
            "continue",
            "info registers a0 pc",
            "x/1xw $pc",
            "stepi",
            "info registers pc",
            "watch watched",
            "continue",
            "print counter",
            "info threads",
            "detach",
        ])
        status, stdout, stderr = target.finish()
    finally:
        target.kill()
    # stopped at the ELF entry point before any instruction ran
    entry = int(subprocess.run(["riscv64-linux-gnu-readelf", "-h", str(program)],
                               capture_output=True, text=True, check=True)
                .stdout.split("Entry point address:")[1].split()[0], 16)
    assert re.search(rf"pc\s+{entry:#x}", out), out
    assert "Breakpoint 1, add_up (n=n@entry=10)" in out, out
    m = re.search(r"a0\s+0xa\s+10\npc\s+(0x[0-9a-f]+)", out)
    assert m, out
    bp_pc = int(m.group(1), 16)
    m = re.search(rf"{bp_pc:#x} <add_up>:\s+(0x[0-9a-f]{{8}})", out)
    assert m, out
    word = int(m.group(1), 16)
    expected = _insn_word(program, bp_pc)
    # a compressed instruction is 2 bytes: compare what objdump decoded
    assert word & ((1 << (8 * (2 if expected < 0x10000 else 4))) - 1) == expected
    pcs = [int(x, 16) for x in re.findall(r"^pc\s+(0x[0-9a-f]+)", out, re.M)]
    assert pcs[-1] in (bp_pc + 2, bp_pc + 4), out  # stepi moved one instruction
    assert "Hardware watchpoint 2: watched" in out, out
    assert "Old value = 0\nNew value = 56" in out, out
    assert "$1 = 55" in out, out
    assert re.search(r"\* 1\s+Thread \d+", out), out
    assert "detached" in out, out
    # after the detach the program ran on to its normal end
    assert stdout == "done\n", (stdout, stderr)
    assert status == 56


class RawGdb:
    """A minimal remote-protocol client, for packets gdb -batch cannot send at will."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.reader = PacketReader()
        self.pending: list = []
        self.acks = True

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next_event(self):
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.pending.extend(self.reader.feed(data))
        return self.pending.pop(0)

    def reply(self) -> bytes:
        while True:
            ev = self.next_event()
            if isinstance(ev, Packet):
                if self.acks:
                    self.send_raw(b"+")
                return ev.payload

    def cmd(self, payload: bytes) -> bytes:
        self.send_raw(frame(payload))
        return self.reply()


def test_raw_protocol_noack_xml_ctrl_c_bad_checksum_kill(program):
    target = Debuggee(program, "spin")
    try:
        g = RawGdb(target.port)
        g.send_raw(b"$qSupported:multiprocess+;swbreak+#00")  # wrong checksum
        assert g.next_event() == "nak"
        features = g.cmd(b"qSupported:xmlRegisters=riscv")
        assert b"qXfer:features:read+" in features and b"QStartNoAckMode+" in features
        assert g.cmd(b"QStartNoAckMode") == b"OK"
        g.acks = False
        xml = g.cmd(b"qXfer:features:read:target.xml:0,3fff")
        assert xml.startswith(b"l") and b"riscv:rv64" in xml
        for part in (b"riscv-64bit-cpu.xml", b"riscv-64bit-fpu.xml"):
            assert part in xml
            body = g.cmd(b"qXfer:features:read:" + part + b":0,3fff")
            assert body.startswith(b"l<?xml")
        threads = g.cmd(b"qfThreadInfo")
        assert re.fullmatch(rb"m[0-9a-f]+", threads)
        assert g.cmd(b"qsThreadInfo") == b"l"
        regs = g.cmd(b"g")
        assert len(regs) == 33 * 16
        assert g.cmd(b"m0,4").startswith(b"E")  # page zero is not mapped
        g.send_raw(frame(b"vCont;c"))
        time.sleep(0.5)
        g.send_raw(b"\x03")  # Ctrl-C
        stop = g.reply()
        assert stop.startswith(b"T02"), stop
        # the spinning loop advanced the counter: read it twice while stopped (still)
        assert g.cmd(b"p20") == g.cmd(b"p20")
        g.send_raw(frame(b"vKill;1"))
        assert g.reply() == b"OK"
        status, _, _ = target.finish()
        assert status != 0
    finally:
        target.kill()


MALFORMED = [b"Z0,zz,4", b"m,", b"G12", b"X10,4:ab", b"Hgfffffff",
             b"qXfer:features:read:nosuch.xml:0,10", b"p999", b"M10,2:zz", b"P2=q"]


def test_malformed_packets_get_errors_and_the_stub_keeps_serving(program):
    target = Debuggee(program)
    try:
        g = RawGdb(target.port)
        for packet in MALFORMED:
            reply = g.cmd(packet)
            assert reply.startswith(b"E"), (packet, reply)
            assert len(g.cmd(b"g")) == 33 * 16  # still serving
        g.send_raw(b"$" + b"m" * 0x5000 + b"#00")  # oversized: dropped as bad
        assert g.next_event() == "nak"
        assert g.cmd(b"D") == b"OK"
        assert target.finish()[0] == 56
    finally:
        target.kill()
