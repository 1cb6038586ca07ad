"""The human monitor (HMP): QEMU's ``(qemu)`` prompt, its commands and their output.

``HMPInterpreter`` turns one command line into text (it also serves QMP's
human-monitor-command); ``HMPSession`` is the interactive side: line editing for a
raw terminal, the banner, the prompt, and a worker thread so a slow command never
stalls the I/O thread.
"""

from __future__ import annotations

import queue
import sys
import time
import traceback
from collections.abc import Callable

from pemu import threads
from pemu.monitor import (
    balloon_commands,
    migrate_hmp,
    net_commands,
    object_commands,
    pci_commands,
    qemu_io,
    vm_snapshots,
)
from pemu.monitor.chardev_commands import query_chardev
from pemu.monitor.errors import QMPError
from pemu.monitor.machine import DEBUG, PRELAUNCH
from pemu.monitor.migrate import migration_of
from pemu.monitor.qmp import VERSION

PROMPT = b"(qemu) "
MAX_LINE = 4096
_SIZES = {"b": 1, "h": 2, "w": 4, "g": 8}

HELP = {
    "help": "help|? [cmd] -- show the help",
    "info": "info [subcommand] -- show information (status registers block mtree qtree "
            "tlb version cpus chardev name kvm network)",
    "x": "x /fmt addr -- virtual memory dump starting at 'addr'",
    "xp": "xp /fmt addr -- physical memory dump starting at 'addr'",
    "stop": "stop|s -- stop emulation",
    "cont": "cont|c -- resume emulation",
    "system_reset": "system_reset -- reset the system",
    "system_powerdown": "system_powerdown -- send system power down event",
    "quit": "quit|q -- quit the emulator",
    "cpu": "cpu index -- set the default CPU",
    "set_link": "set_link name on|off -- change the link status of a network adapter",
    "netdev_add": "netdev_add [user],id=str[,prop=value][,...] -- add host network device",
    "netdev_del": "netdev_del id -- remove host network device",
    "hostfwd_add": "hostfwd_add [netdev_id] [tcp|udp]:[hostaddr]:hostport-"
                   "[guestaddr]:guestport -- redirect TCP or UDP connections from host to guest",
    "hostfwd_remove": "hostfwd_remove [netdev_id] [tcp|udp]:[hostaddr]:hostport -- remove "
                      "host-to-guest TCP or UDP redirection",
    "savevm": "savevm [tag] -- save a VM snapshot. If no tag is provided, a new snapshot "
              "is created",
    "loadvm": "loadvm tag -- restore a VM snapshot from its tag",
    "delvm": "delvm tag -- delete a VM snapshot from its tag",
    "migrate": "migrate [-d] uri -- migrate to URI (using -d to not wait for completion)",
    "migrate_cancel": "migrate_cancel -- cancel the current VM migration",
    "migrate_set_parameter": "migrate_set_parameter parameter value -- Set the parameter "
                             "for migration",
    "migrate_set_capability": "migrate_set_capability capability state -- Enable/Disable "
                              "the usage of a capability for migration",
    "balloon": "balloon target -- request VM to change its memory allocation (in MB)",
    "object_add": "object_add [qom-type=]type,id=str[,prop=value][,...] -- create QOM object",
    "object_del": "object_del id -- destroy QOM object",
    "qemu_io": 'qemu-io device "[-d] command" -- run a qemu-io command on a block device',
}
_ALIASES = {"?": "help", "s": "stop", "c": "cont", "q": "quit", "qemu-io": "qemu_io"}


class HMPError(Exception):
    pass


def _parse_int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise HMPError(f"invalid number '{text}'") from None


class HMPInterpreter:
    def __init__(self, machine, monitors=None) -> None:
        self.machine = machine
        self.monitors = monitors
        self.cpu_index = 0

    def select_cpu(self, index: int) -> None:
        if not any(c.index == index for c in self.machine.cpus()):
            raise QMPError(f"Invalid CPU index {index}")
        self.cpu_index = index

    def execute(self, line: str) -> str:
        """Run one command line; errors come back as text, as in QEMU."""
        line = line.strip()
        if not line:
            return ""
        name, _, rest = line.partition(" ")
        name = _ALIASES.get(name, name)
        handler = getattr(self, "cmd_" + name, None)
        if handler is None:
            return f"unknown command: '{name}'\n"
        try:
            return handler(rest.strip())
        except (HMPError, QMPError) as e:
            return f"Error: {e}\n"
        except migrate_hmp.HMPArgumentError as e:  # QEMU prints these without "Error: "
            return str(e)

    # -- commands ---------------------------------------------------------------------
    def cmd_help(self, arg: str) -> str:
        if arg:
            arg = _ALIASES.get(arg, arg)
            return HELP.get(arg, f"unknown command: '{arg}'") + "\n"
        return "".join(h + "\n" for h in HELP.values())

    def cmd_stop(self, arg: str) -> str:
        self.machine.stop()
        return ""

    def cmd_cont(self, arg: str) -> str:
        self.machine.cont()
        return ""

    def cmd_system_reset(self, arg: str) -> str:
        self.machine.system_reset()
        return ""

    def cmd_system_powerdown(self, arg: str) -> str:
        self.machine.system_powerdown()
        return ""

    def cmd_quit(self, arg: str) -> str:
        self.machine.quit()
        return ""

    def cmd_cpu(self, arg: str) -> str:
        self.select_cpu(_parse_int(arg))
        return ""

    def cmd_set_link(self, arg: str) -> str:
        words = arg.split()
        if len(words) != 2 or words[1] not in ("on", "off"):
            raise HMPError("usage: set_link name on|off")
        net_commands.set_link(self.machine, words[0], words[1] == "on")
        return ""

    def cmd_netdev_add(self, arg: str) -> str:
        net_commands.netdev_add_text(self.machine, arg)
        return ""

    def cmd_netdev_del(self, arg: str) -> str:
        net_commands.netdev_del(self.machine, arg)
        return ""

    def cmd_object_add(self, arg: str) -> str:
        object_commands.object_add_text(self.machine, arg)
        return ""

    def cmd_object_del(self, arg: str) -> str:
        object_commands.object_del(self.machine, arg.strip())
        return ""

    def cmd_hostfwd_add(self, arg: str) -> str:
        return net_commands.hostfwd_add(self.machine, arg)

    def cmd_hostfwd_remove(self, arg: str) -> str:
        return net_commands.hostfwd_remove(self.machine, arg)

    def cmd_balloon(self, arg: str) -> str:
        return balloon_commands.hmp_balloon(self.machine, arg)

    def info_balloon(self) -> str:
        return balloon_commands.hmp_info_balloon(self.machine)

    def cmd_x(self, arg: str) -> str:
        return self._dump(arg, physical=False)

    def cmd_xp(self, arg: str) -> str:
        return self._dump(arg, physical=True)

    def cmd_info(self, arg: str) -> str:
        what = arg.split()[0] if arg else ""
        handler = getattr(self, "info_" + what, None)
        if handler is None:
            topics = sorted(n[5:] for n in dir(self) if n.startswith("info_"))
            return ("info " + "|".join(topics) + "\n") if not what else \
                f"unknown info subcommand '{what}'\n"
        return handler()

    # -- info ---------------------------------------------------------------------------
    def info_status(self) -> str:
        state = self.machine.run_state
        if self.machine.running:
            return "VM status: running\n"
        if state in ("paused",):
            return "VM status: paused\n"
        if state == PRELAUNCH:
            return "VM status: paused (prelaunch)\n"
        if state == DEBUG:
            return "VM status: paused (debug)\n"
        return f"VM status: paused ({state})\n"

    def info_version(self) -> str:
        v = VERSION["qemu"]
        return f"{v['major']}.{v['minor']}.{v['micro']} ({VERSION['package']})\n"

    def info_name(self) -> str:
        return f"{self.machine.name}\n" if self.machine.name else ""

    def info_kvm(self) -> str:
        return f"kvm support: {'enabled' if self.machine.accel == 'kvm' else 'disabled'}\n"

    def info_cpus(self) -> str:
        out = []
        for c in self.machine.cpus():
            mark = "*" if c.index == self.cpu_index else " "
            halted = " (halted)" if c.halted else ""
            out.append(f"{mark} CPU #{c.index}: pc=0x{c.pc:016x}{halted} thread_id={c.thread_id}")
        return "".join(line + "\n" for line in out)

    def info_registers(self) -> str:
        return self.machine.cpu_registers(self.cpu_index)

    def info_mtree(self) -> str:
        return self.machine.info_mtree()

    def info_qtree(self) -> str:
        return self.machine.info_qtree()

    def info_tlb(self) -> str:
        return self.machine.info_tlb(self.cpu_index)

    def cmd_savevm(self, arg: str) -> str:
        name = arg or time.strftime("vm-%Y%m%d%H%M%S")
        vm_snapshots.save_vm(self.machine, name)
        return ""

    def cmd_loadvm(self, arg: str) -> str:
        if not arg:
            raise HMPError("loadvm: a snapshot tag is needed")
        vm_snapshots.load_vm(self.machine, arg)
        return ""

    def cmd_delvm(self, arg: str) -> str:
        if not arg:
            raise HMPError("delvm: a snapshot tag is needed")
        vm_snapshots.delete_vm(self.machine, arg)
        return ""

    def cmd_migrate(self, arg: str) -> str:
        words = arg.split()
        detach = "-d" in words
        words = [w for w in words if w != "-d"]
        if len(words) != 1:
            raise HMPError("usage: migrate [-d] uri")
        mig = migration_of(self.machine)
        mig.start(words[0])
        while not detach and mig.status in ("setup", "active", "device", "cancelling"):
            time.sleep(0.05)
        if mig.status == "failed":
            return f"Error: {mig.error}\n"
        return ""

    def cmd_qemu_io(self, arg: str) -> str:
        return qemu_io.run(self.machine, arg)

    def cmd_migrate_cancel(self, arg: str) -> str:
        migration_of(self.machine).cancel()
        return ""

    def info_migrate(self) -> str:
        info = migration_of(self.machine).query()
        if not info:
            return ""
        lines = [f"Migration status: {info['status']}",
                 f"total time: {info['total-time']} ms"]
        if "downtime" in info:
            lines.append(f"downtime: {info['downtime']} ms")
        ram = info["ram"]
        lines += [f"transferred ram: {ram['transferred'] >> 10} kbytes",
                  f"remaining ram: {ram['remaining'] >> 10} kbytes",
                  f"total ram: {ram['total'] >> 10} kbytes",
                  f"duplicate: {ram['duplicate']} pages", f"normal: {ram['normal']} pages",
                  f"dirty sync count: {ram['dirty-sync-count']}"]
        if "error-desc" in info:
            lines.append(f"error description: {info['error-desc']}")
        return "".join(line + "\n" for line in lines)

    def cmd_migrate_set_parameter(self, arg: str) -> str:
        migrate_hmp.set_parameter(migration_of(self.machine), arg)
        return ""

    def cmd_migrate_set_capability(self, arg: str) -> str:
        migrate_hmp.set_capability(migration_of(self.machine), arg)
        return ""

    def info_migrate_parameters(self) -> str:
        return migrate_hmp.info_parameters(migration_of(self.machine))

    def info_migrate_capabilities(self) -> str:
        return migrate_hmp.info_capabilities(migration_of(self.machine))

    def info_snapshots(self) -> str:
        return vm_snapshots.info_snapshots(self.machine)

    def info_chardev(self) -> str:
        return "".join(f"{c['label']}: filename={c['filename']}\n"
                       for c in query_chardev(self.machine.chardevs))

    def info_network(self) -> str:
        return net_commands.info_network(self.machine)

    def info_pci(self) -> str:
        return pci_commands.info_pci(self.machine.pci_host)

    def info_block(self) -> str:
        out = []
        for b in self.machine.block.query_block():
            ins = b["inserted"]
            ro = ", read-only" if ins["ro"] else ""
            out.append(f"{b['device']} ({ins['node-name']}): {ins['file']} "
                       f"({ins['drv']}{ro})")
            if b.get("qdev"):
                out.append(f"    Attached to:      {b['qdev']}")
            if b["removable"]:
                tray = "open" if b.get("tray_open") else "closed"
                out.append(f"    Removable device: not locked, tray {tray}")
            out.append("    Cache mode:       writeback")
            if ins.get("backing_file"):
                out.append(f"    Backing file:     {ins['backing_file']} "
                           f"(chain depth: {ins['backing_file_depth']})")
            out.append("")
        return "\n".join(out) + ("\n" if out else "")

    # -- memory dumps -----------------------------------------------------------------
    def _dump(self, arg: str, physical: bool) -> str:
        count, fmt, size = 1, "x", 4
        if arg.startswith("/"):
            spec, _, arg = arg[1:].partition(" ")
            digits = ""
            for ch in spec:
                if ch.isdigit():
                    digits += ch
                elif ch in _SIZES:
                    size = _SIZES[ch]
                elif ch in "xduoc":
                    fmt = ch
                else:
                    raise HMPError(f"invalid char in format: '{ch}'")
            count = int(digits) if digits else 1
        if fmt == "c":
            size = 1
        arg = arg.strip()
        if not arg:
            raise HMPError("missing address")
        addr = self._address(arg)
        if count > 1 << 16:
            raise HMPError("too many items (at most 65536)")
        data = self.machine.read_memory(addr, count * size, physical, self.cpu_index)
        per_line = 8 if fmt == "c" else max(1, 16 // size)
        lines = []
        for i in range(0, count, per_line):
            cells = []
            for j in range(i, min(count, i + per_line)):
                chunk = data[j * size:(j + 1) * size]
                cells.append(self._cell(int.from_bytes(chunk, "little"), fmt, size))
            lines.append(f"{addr + i * size:016x}: " + " ".join(cells))
        return "".join(line + "\n" for line in lines)

    def _address(self, text: str) -> int:
        if text.startswith("$"):
            reg = text[1:]
            if reg == "pc":
                cpus = {c.index: c for c in self.machine.cpus()}
                if self.cpu_index in cpus:
                    return cpus[self.cpu_index].pc
            raise HMPError(f"unknown register '{text}'")
        return _parse_int(text)

    @staticmethod
    def _cell(value: int, fmt: str, size: int) -> str:
        bits = size * 8
        if fmt == "x":
            return f"0x{value:0{size * 2}x}"
        if fmt == "o":
            return f"{value:#o}"
        if fmt == "u":
            return str(value)
        if fmt == "d":
            return str(value - (1 << bits) if value >> (bits - 1) else value)
        ch = chr(value)
        return f"'{ch}'" if ch.isprintable() and value < 128 else f"'\\x{value:02x}'"


class HMPSession:
    """An interactive HMP: banner, prompt, line editing, one command at a time."""

    def __init__(self, machine, monitors, send: Callable[[bytes], None], echo: bool = False
                 ) -> None:
        self.interp = HMPInterpreter(machine, monitors)
        self._send = send
        self.echo = echo
        self._line = bytearray()
        self._lines: queue.Queue = queue.Queue(64)
        self.closed = False
        self._worker = threads.start_daemon(self._work, name="pemu-hmp")

    def start(self) -> None:
        v = VERSION["qemu"]
        self._send(f"QEMU {v['major']}.{v['minor']}.{v['micro']} monitor - type 'help' for "
                   "more information\r\n".encode())
        self.prompt()

    def prompt(self) -> None:
        self._send(PROMPT)

    def feed(self, data: bytes) -> None:
        for byte in data:
            if byte in (0x0D, 0x0A):
                if self.echo:
                    self._send(b"\r\n")
                line = self._line.decode("utf-8", "replace")
                self._line.clear()
                try:
                    self._lines.put_nowait(line)
                except queue.Full:
                    self._send(b"monitor busy: line dropped\r\n")
            elif byte in (0x08, 0x7F):
                if self._line:
                    self._line.pop()
                    if self.echo:
                        self._send(b"\b \b")
            elif byte >= 0x20 and len(self._line) < MAX_LINE:
                self._line.append(byte)
                if self.echo:
                    self._send(bytes([byte]))

    def _work(self) -> None:
        while True:
            line = self._lines.get()
            if line is None or self.closed:
                return
            if not line.strip():
                # QEMU's readline answers an empty line with a new prompt
                self.prompt()
                continue
            try:
                out = self.interp.execute(line)
            except Exception as e:  # noqa: BLE001 - the monitor outlives a broken command
                print("pemu: internal error in an HMP command:", file=sys.stderr)
                traceback.print_exc()
                out = f"Error: internal error: {e}\n"
            self._send(out.replace("\n", "\r\n").encode())
            if not self.closed:
                self.prompt()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._lines.put_nowait(None)
            except queue.Full:
                pass

