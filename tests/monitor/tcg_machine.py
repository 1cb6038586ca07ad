"""A small but real machine for monitor tests: RISC-V harts on pemu's TCG engine.

Each hart runs a counting loop (ld/addi/sd/j) out of guest memory on its own thread,
so stop/cont really park and release translated code, query-cpus-fast reports pcs
that move, and memsave/x read the counters the guest wrote.  Boards give the
monitor the same ``MonitoredMachine`` primitives.
"""

from __future__ import annotations

import threading

from pemu.accel.tcg.engine import TCGEngine
from pemu.linux_user.vmem import GuestFault, GuestVirtualMemory
from pemu.monitor.errors import QMPError
from pemu.monitor.machine import CPUInfo, MonitoredMachine
from pemu.target.riscv.cpu_state import ABI_NAMES
from pemu.target.riscv.tcg_target import RISCV64

CODE = 0x1000
DATA = 0x10000
# lui a0,0x10 ; loop: ld t0,0(a0) ; addi t0,t0,1 ; sd t0,0(a0) ; j loop
PROGRAM = [0x00010537, 0x00053283, 0x00128293, 0x00553023, 0xFF5FF06F]
LOOP = CODE + 4


class TCGLoopMachine(MonitoredMachine):
    machine_type = "virt"
    target = "riscv64"
    accel = "tcg"
    cpu_type = "rv64-riscv-cpu"

    def __init__(self, ncpus: int = 2, **kw) -> None:
        super().__init__(**kw)
        self.mem = GuestVirtualMemory(1 << 24)
        self.mem.map_anonymous(CODE, 4096, 5)
        self.mem.map_anonymous(DATA, 4096, 3)
        self.mem.write_initial(CODE, b"".join(w.to_bytes(4, "little") for w in PROGRAM))
        self.engine = TCGEngine(self.mem, RISCV64)
        self.harts = []
        for i in range(ncpus):
            cpu = self.engine.create_cpu()
            cpu.state.pc = LOOP
            cpu.state.set_x(10, DATA + 8 * i)  # each hart counts in its own word
            self.harts.append(cpu)
        self.resets = 0
        self.powerdowns = 0
        self._go = threading.Event()
        if not kw.get("start_stopped"):
            self._go.set()
        self._parked = 0
        self._cond = threading.Condition()
        self._stop_threads = False
        self.threads = [threading.Thread(target=self._hart_loop, args=(c,), daemon=True)
                        for c in self.harts]
        for t in self.threads:
            t.start()

    def counter(self, i: int) -> int:
        return int.from_bytes(self.mem.read(DATA + 8 * i, 8), "little")

    def _hart_loop(self, cpu) -> None:
        while True:
            with self._cond:
                self._parked += 1
                self._cond.notify_all()
            self._go.wait()
            with self._cond:
                self._parked -= 1
            if self._stop_threads:
                return
            cpu.run()

    # -- MonitoredMachine primitives -----------------------------------------------------
    def _pause(self) -> None:
        self._go.clear()
        for cpu in self.harts:
            cpu.request_exit()
        with self._cond:
            self._cond.wait_for(lambda: self._parked == len(self.harts), timeout=30)

    def _resume(self) -> None:
        self._go.set()

    def _reset(self) -> None:
        self.resets += 1
        for i, cpu in enumerate(self.harts):
            cpu.state.pc = LOOP
            cpu.state.set_x(10, DATA + 8 * i)

    def _powerdown(self) -> None:
        self.powerdowns += 1
        self.guest_shutdown("guest-shutdown")

    def _quit(self) -> None:
        self.shutdown_threads()

    def shutdown_threads(self) -> None:
        self._stop_threads = True
        for cpu in self.harts:
            cpu.request_exit()
        self._go.set()

    def cpus(self) -> list[CPUInfo]:
        return [CPUInfo(i, c.state.pc, thread_id=t.native_id or 0)
                for i, (c, t) in enumerate(zip(self.harts, self.threads, strict=True))]

    def cpu_registers(self, index: int) -> str:
        s = self.harts[index].state
        lines = [f" pc       {s.pc:016x}"]
        for i in range(32):
            lines.append(f" x{i}/{ABI_NAMES[i]}".ljust(10) + f"{s.x(i):016x}")
        return "\n".join(lines) + "\n"

    def read_memory(self, addr: int, size: int, physical: bool = True,
                    cpu_index: int = 0) -> bytes:
        try:
            return self.mem.read(addr, size)
        except (GuestFault, ValueError) as e:
            raise QMPError(f"Invalid addr 0x{addr:x}/size {size} specified: {e}") from None

    def info_mtree(self) -> str:
        return ("address-space: memory\n"
                f"  {CODE:016x}-{CODE + 0xfff:016x} (prio 0, ram): code\n"
                f"  {DATA:016x}-{DATA + 0xfff:016x} (prio 0, ram): data\n")
