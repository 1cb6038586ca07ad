"""The qemu.qmp client library (what management tools use) against pemu's QMP server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import stat
import subprocess

import pytest
from qemu.qmp import ExecuteError, QMPClient

from pemu.monitor.server import create_monitors
from pemu.qemuopts.config import SystemConfig

from .tcg_machine import DATA, LOOP, TCGLoopMachine


@pytest.fixture
def vm(tmp_path):
    machine = TCGLoopMachine(2, name="guest-one")
    sock = str(tmp_path / "qmp.sock")
    cfg = SystemConfig(qmp=[f"unix:{sock},server=on,wait=off"])
    monitors = create_monitors(cfg, machine)
    yield machine, sock
    monitors.close()
    machine.shutdown_threads()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _client(path: str) -> QMPClient:
    client = QMPClient("test")
    await client.connect(path)
    return client


async def _next_event(client: QMPClient, name: str, timeout: float = 10):
    async def wait():
        async for event in client.events:
            if event["event"] == name:
                return event
    return await asyncio.wait_for(wait(), timeout)


def test_socket_is_private(vm):
    _, sock = vm
    mode = os.stat(sock).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_greeting_and_queries(vm):
    machine, sock = vm

    async def go():
        c = await _client(sock)
        assert c.greeting.QMP.version["qemu"]["major"] == 7
        assert list(c.greeting.QMP.capabilities) == []
        version = await c.execute("query-version")
        status = await c.execute("query-status")
        name = await c.execute("query-name")
        target = await c.execute("query-target")
        kvm = await c.execute("query-kvm")
        machines = await c.execute("query-machines")
        cpus = await c.execute("query-cpus-fast")
        commands = {x["name"] for x in await c.execute("query-commands")}
        await c.disconnect()
        return version, status, name, target, kvm, machines, cpus, commands

    version, status, name, target, kvm, machines, cpus, commands = run(go())
    assert version["package"].startswith("pemu")
    assert status == {"status": "running", "running": True, "singlestep": False}
    assert name == {"name": "guest-one"}
    assert target == {"arch": "riscv64"}
    # KVM runs only guests of the host's architecture: a RISC-V guest on x86 never
    riscv_host = os.uname().machine == "riscv64"
    assert kvm["enabled"] is False
    assert kvm["present"] == (riscv_host and os.path.exists("/dev/kvm"))
    # the registry's riscv64 ones
    assert [m["name"] for m in machines] == ["none", "spike", "virt"]
    assert [m["name"] for m in machines if m.get("is-default")] == ["virt"]
    assert [c["cpu-index"] for c in cpus] == [0, 1]
    assert {c["thread-id"] for c in cpus} == {t.native_id for t in machine.threads}
    for needed in ("query-qmp-schema", "stop", "cont", "memsave", "pmemsave", "blockdev-add",
                   "blockdev-snapshot-sync", "qom-list", "qom-get", "human-monitor-command",
                   "query-chardev", "chardev-add", "chardev-remove", "block_resize",
                   "system_powerdown", "system_reset", "quit", "query-blockstats"):
        assert needed in commands


def test_stop_cont_events_and_guest_progress(vm):
    machine, sock = vm

    async def go():
        c = await _client(sock)
        await c.execute("stop")
        stop_event = await _next_event(c, "STOP")
        paused = await c.execute("query-status")
        before = machine.counter(0)
        await asyncio.sleep(0.3)
        still = machine.counter(0)
        await c.execute("cont")
        resume_event = await _next_event(c, "RESUME")
        await asyncio.sleep(0.3)
        after = machine.counter(0)
        await c.disconnect()
        return stop_event, paused, before, still, resume_event, after

    stop_event, paused, before, still, resume_event, after = run(go())
    assert paused["status"] == "paused" and not paused["running"]
    assert before == still  # really stopped: the harts write nothing while paused
    assert after > still  # and really running again
    for ev in (stop_event, resume_event):
        ts = ev["timestamp"]
        assert ts["seconds"] > 1_600_000_000 and 0 <= ts["microseconds"] < 1_000_000


def test_errors_have_classes_and_echo_the_id(vm):
    _, sock = vm
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        f = s.makefile("rwb", buffering=0)
        json.loads(f.readline())  # greeting

        def ask(obj_or_text) -> dict:
            data = obj_or_text if isinstance(obj_or_text, bytes) else \
                json.dumps(obj_or_text).encode()
            f.write(data + b"\n")
            return json.loads(f.readline())

        early = ask({"execute": "query-status", "id": 1})
        assert early["error"]["class"] == "CommandNotFound" and early["id"] == 1
        assert ask({"execute": "qmp_capabilities", "id": "neg"}) == {"return": {},
                                                                      "id": "neg"}
        r = ask({"execute": "no-such-command", "id": {"nested": [1, 2]}})
        assert r == {"error": {"class": "CommandNotFound",
                               "desc": "The command no-such-command has not been found"},
                     "id": {"nested": [1, 2]}}
        r = ask({"execute": "memsave", "arguments": {"val": "x", "size": 4,
                                                      "filename": "/dev/null"}, "id": 7})
        assert r["error"]["class"] == "GenericError" and r["id"] == 7
        assert "val" in r["error"]["desc"]
        r = ask({"execute": "stop", "arguments": {"bogus": 1}, "id": 8})
        assert r["error"]["desc"] == "Parameter 'bogus' is unexpected"
        r = ask({"execute": "qom-get", "arguments": {"path": "/nowhere", "property": "x"},
                 "id": 9})
        assert r["error"]["class"] == "DeviceNotFound"
        f.write(b'{"execute": "query-status", "id": 3\n')  # an object split over lines...
        r = ask(b"}")  # ...completed by the next one: still one valid object
        assert r["return"]["status"] == "running" and r["id"] == 3
        r = ask(b"[1, 2, 3]")
        assert r["error"]["class"] == "GenericError"
        r = ask(b'{"execute": nonsense}')
        assert r["error"]["class"] == "GenericError" and "JSON parse error" in \
            r["error"]["desc"]
        r = ask(b"[" * 10000 + b"]" * 10000)
        assert "nesting" in r["error"]["desc"]
        r = ask(b'{"execute": "query-name", "id": "' + b"a" * (2 << 20) + b'"}')
        assert "longer than" in r["error"]["desc"]
        assert ask({"execute": "query-name", "id": 10}) == {"return": {"name": "guest-one"},
                                                            "id": 10}


def test_two_monitors_both_get_events(vm, tmp_path):
    machine, sock = vm

    async def go():
        a = await _client(sock)
        b = await _client(sock)
        await a.execute("system_reset")
        ev_a = await _next_event(a, "RESET")
        ev_b = await _next_event(b, "RESET")
        await b.execute("system_powerdown")
        pw = await _next_event(a, "POWERDOWN")
        sd = await _next_event(b, "SHUTDOWN")
        await a.disconnect()
        await b.disconnect()
        return ev_a, ev_b, pw, sd

    ev_a, ev_b, pw, sd = run(go())
    assert ev_a["data"] == ev_b["data"] == {"guest": False, "reason": "host-qmp-system-reset"}
    assert machine.resets == 1 and machine.powerdowns == 1
    assert sd["data"] == {"guest": True, "reason": "guest-shutdown"}


def test_memsave_pmemsave_hmp_and_schema(vm, tmp_path):
    machine, sock = vm
    vfile, pfile = tmp_path / "v.bin", tmp_path / "p.bin"

    async def go():
        c = await _client(sock)
        await c.execute("stop")
        await c.execute("memsave", {"val": DATA, "size": 16, "filename": str(vfile),
                                    "cpu-index": 1})
        await c.execute("pmemsave", {"val": DATA, "size": 16, "filename": str(pfile)})
        regs = await c.execute("human-monitor-command",
                               {"command-line": "info registers", "cpu-index": 1})
        dump = await c.execute("human-monitor-command", {"command-line": "x /2xg 0x10000"})
        status = await c.execute("human-monitor-command", {"command-line": "info status"})
        with pytest.raises(ExecuteError) as bad:
            await c.execute("pmemsave", {"val": 0x7000000, "size": 4096,
                                         "filename": str(tmp_path / "bad.bin")})
        schema = await c.execute("query-qmp-schema")
        await c.disconnect()
        return regs, dump, status, bad.value, schema

    regs, dump, status, bad, schema = run(go())
    counters = [machine.counter(0), machine.counter(1)]
    saved = vfile.read_bytes()
    assert saved == pfile.read_bytes()
    assert [int.from_bytes(saved[i:i + 8], "little") for i in (0, 8)] == counters
    assert f" pc       {LOOP:016x}" in regs or "pc" in regs
    assert f"x10/a0   {DATA + 8:016x}" in regs  # hart 1 counts in the second word
    assert dump == f"0000000000010000: 0x{counters[0]:016x} 0x{counters[1]:016x}\n"
    assert status == "VM status: paused\n"
    assert bad.error_class == "GenericError"
    by_name = {e["name"]: e for e in schema}
    memsave = by_name["memsave"]
    assert memsave["meta-type"] == "command"
    members = {m["name"]: m for m in by_name[memsave["arg-type"]]["members"]}
    assert members["val"]["type"] == "int" and "default" in members["cpu-index"]
    assert by_name["SHUTDOWN"]["meta-type"] == "event"
    for entry in schema:  # every referenced type is itself in the schema
        for key in ("arg-type", "ret-type", "element-type"):
            if key in entry:
                assert entry[key] in by_name, entry


def test_qom_and_chardevs(vm, tmp_path):
    _, sock = vm

    async def go():
        c = await _client(sock)
        root = await c.execute("qom-list", {"path": "/"})
        cpus = await c.execute("qom-list", {"path": "/machine/unattached"})
        mtype = await c.execute("qom-get", {"path": "/machine", "property": "type"})
        idx = await c.execute("qom-get", {"path": "/machine/unattached/device[1]",
                                          "property": "cpu-index"})
        await c.disconnect()
        return root, cpus, mtype, idx

    root, cpus, mtype, idx = run(go())
    assert {"name": "machine", "type": "child<virt-machine>"} in root
    assert {e["name"] for e in cpus} == {"device[0]", "device[1]"}
    assert mtype == "virt-machine" and idx == 1


def test_chardev_add_remove(tmp_path):
    from pemu.chardev.registry import ChardevRegistry

    machine = TCGLoopMachine(1)
    sock = str(tmp_path / "q.sock")
    registry = ChardevRegistry()
    monitors = create_monitors(SystemConfig(qmp=[f"unix:{sock},server=on,wait=off"]),
                               machine, registry)
    out = tmp_path / "log.txt"

    async def go():
        c = await _client(sock)
        await c.execute("chardev-add", {"id": "log0", "backend": {
            "type": "file", "data": {"out": str(out)}}})
        listed = await c.execute("query-chardev")
        with pytest.raises(ExecuteError):
            await c.execute("chardev-add", {"id": "log0", "backend": {"type": "null"}})
        registry.chardevs["log0"].write(b"hello\n")
        await c.execute("chardev-remove", {"id": "log0"})
        with pytest.raises(ExecuteError) as gone:
            await c.execute("chardev-remove", {"id": "log0"})
        await c.disconnect()
        return listed, gone.value

    try:
        listed, gone = run(go())
    finally:
        monitors.close()
        machine.shutdown_threads()
        registry.close_all()
    assert [x["label"] for x in listed] == ["log0"]
    assert out.read_bytes() == b"hello\n"
    assert gone.error_class == "DeviceNotFound"


def test_quit_sends_shutdown(vm):
    machine, sock = vm

    async def go():
        c = await _client(sock)
        await c.execute("quit")
        ev = await _next_event(c, "SHUTDOWN")
        await c.disconnect()
        return ev

    ev = run(go())
    assert ev["data"] == {"guest": False, "reason": "host-qmp-quit"}
    assert machine.quit_requested.is_set()


@pytest.fixture
def qemu_img():
    path = shutil.which("qemu-img")
    if path is None:
        pytest.skip("qemu-img (Debian qemu-utils) is not installed")
    return path


def _info(qemu_img: str, path) -> dict:
    return json.loads(subprocess.run([qemu_img, "info", "--output=json", "-U", str(path)],
                                     capture_output=True, text=True, check=True).stdout)


def test_block_commands_against_real_images(vm, tmp_path, qemu_img):
    from pemu.block.drive import open_drive

    machine, sock = vm
    disk = tmp_path / "disk.qcow2"
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(disk), "1M"], check=True)
    backend = open_drive({"file": str(disk), "format": "qcow2"})
    machine.block.add_drive("drive0", backend, qdev="/machine/peripheral/blk0")
    backend.pwrite(0, b"\xaa" * 4096)
    backend.pread(0, 512)
    extra = tmp_path / "extra.raw"
    subprocess.run([qemu_img, "create", "-q", "-f", "raw", str(extra), "64k"], check=True)
    overlay = tmp_path / "overlay.qcow2"

    async def go():
        c = await _client(sock)
        blocks = await c.execute("query-block")
        stats = await c.execute("query-blockstats")
        await c.execute("block_resize", {"device": "drive0", "size": 2 << 20})
        await c.execute("blockdev-snapshot-sync", {"device": "drive0",
                                                   "snapshot-file": str(overlay),
                                                   "format": "qcow2"})
        after = await c.execute("query-block")
        await c.execute("blockdev-add", {"driver": "raw", "node-name": "extra",
                                         "file": {"driver": "file",
                                                  "filename": str(extra)}})
        nodes = await c.execute("query-named-block-nodes")
        with pytest.raises(ExecuteError) as dup:
            await c.execute("blockdev-add", {"driver": "raw", "node-name": "extra",
                                             "file": {"driver": "file",
                                                      "filename": str(extra)}})
        await c.execute("blockdev-del", {"node-name": "extra"})
        # libvirt's attach-device: a protocol node, then a format node naming it, with
        # "backing": null (no backing node); a backing node itself is not implemented
        await c.execute("blockdev-add", {"driver": "file", "filename": str(extra),
                                         "node-name": "lv-storage", "auto-read-only": True,
                                         "discard": "unmap"})
        await c.execute("blockdev-add", {"node-name": "lv-format", "read-only": False,
                                         "driver": "raw", "file": "lv-storage",
                                         "backing": None})
        pair = [n["node-name"] for n in await c.execute("query-named-block-nodes")]
        with pytest.raises(ExecuteError) as backing:
            await c.execute("blockdev-add", {"node-name": "lv-2", "driver": "raw",
                                             "file": "lv-storage", "backing": "lv-format"})
        for node in ("lv-format", "lv-storage"):
            await c.execute("blockdev-del", {"node-name": node})
        with pytest.raises(ExecuteError) as missing:
            await c.execute("block_resize", {"device": "nodisk", "size": 1})
        info = await c.execute("human-monitor-command", {"command-line": "info block"})
        await c.disconnect()
        return blocks, stats, after, nodes, dup.value, missing.value, info, pair, backing.value

    blocks, stats, after, nodes, dup, missing, info, pair, backing = run(go())
    assert {"lv-storage", "lv-format"} <= set(pair)
    assert "backing node is not implemented" in str(backing)
    ins = blocks[0]["inserted"]
    assert blocks[0]["device"] == "drive0" and ins["drv"] == "qcow2"
    assert ins["image"]["virtual-size"] == 1 << 20 and ins["file"] == str(disk)
    s = stats[0]["stats"]
    assert s["wr_bytes"] == 4096 and s["wr_operations"] == 1
    assert s["rd_bytes"] == 512 and s["rd_operations"] == 1
    top = after[0]["inserted"]
    assert top["file"] == str(overlay) and top["backing_file"] == str(disk)
    assert top["image"]["virtual-size"] == 2 << 20
    assert [n["node-name"] for n in nodes] == ["#block001", "extra"]  # the drive's too
    assert "Duplicate" in dup.error.error.desc
    assert missing.error_class == "DeviceNotFound"
    assert f"drive0 (#block001): {overlay} (qcow2)" in info
    # the guest keeps writing: into the overlay, which real qemu-img reads back
    backend.pwrite(4096, b"\x55" * 4096)
    backend.flush()
    meta = _info(qemu_img, overlay)
    assert meta["backing-filename"] == str(disk) and meta["virtual-size"] == 2 << 20
    assert _info(qemu_img, disk)["virtual-size"] == 2 << 20  # resized before the snapshot
    data = subprocess.run(["qemu-io", "-f", "qcow2", "-U", "-c", "read -P 0x55 4096 4096",
                           "-c", "read -P 0xaa 0 4096", str(overlay)],
                          capture_output=True, text=True)
    if data.returncode != 127:  # qemu-io ships with qemu-utils; check content when present
        assert "Pattern verification failed" not in data.stdout, data.stdout
    backend.close()


def test_block_io_error_event(vm, tmp_path, qemu_img):
    """A real host error (ENOSPC from the kernel) under a drive -> BLOCK_IO_ERROR."""
    from pemu.block.drive import open_drive

    machine, sock = vm
    disk = tmp_path / "disk.raw"
    subprocess.run([qemu_img, "create", "-q", "-f", "raw", str(disk), "64k"], check=True)
    backend = open_drive({"file": str(disk), "format": "raw"})
    drive = machine.block.add_drive("hd0", backend)
    # The disk fills up: its descriptor now refers to /dev/full, where writes fail
    # with ENOSPC, as on a host file system with no space left.
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, drive.top.file.fd)
    os.close(full)

    async def go():
        c = await _client(sock)
        await asyncio.get_running_loop().run_in_executor(None, _failing_write, backend)
        ev = await _next_event(c, "BLOCK_IO_ERROR")
        stats = await c.execute("query-blockstats")
        await c.disconnect()
        return ev, stats

    ev, stats = run(go())
    assert ev["data"]["device"] == "hd0" and ev["data"]["operation"] == "write"
    assert ev["data"]["action"] == "report" and ev["data"]["nospace"] is True
    assert stats[0]["stats"]["failed_wr_operations"] == 1


def _failing_write(backend) -> None:
    from pemu.block.errors import BlockError

    with pytest.raises((BlockError, OSError)):
        backend.pwrite(0, b"x" * 4096)


def test_types_and_properties_come_from_the_registry(vm):
    """qom-list-types, device-list-properties, qom-list-properties and
    query-cpu-definitions answer from the same registry -device help reads."""
    from pemu.hw import all_types  # noqa: F401
    from pemu.qom import registry

    _, sock = vm

    async def go():
        c = await _client(sock)
        listed = await c.execute("qom-list-types")
        devices = await c.execute("qom-list-types", {"implements": "device"})
        blk = await c.execute("device-list-properties", {"typename": "virtio-blk-device"})
        machine = await c.execute("qom-list-properties", {"typename": "virt-machine"})
        cpus = await c.execute("query-cpu-definitions")
        with pytest.raises(ExecuteError, match="not found"):
            await c.execute("device-list-properties", {"typename": "no-such-device"})
        await c.disconnect()
        return listed, devices, blk, machine, cpus

    listed, devices, blk, machine, cpus = run(go())
    names = {t["name"] for t in listed}
    assert {"virt-machine", "spike-machine", "rv64-riscv64-cpu", "virtio-blk-device",
            "virtio-rng-device"} <= names
    assert "microvm-machine" not in names  # another target's machine
    # each alias is a type name of its own, as in QEMU (virtconsole)
    expected = {n for t in registry.types(registry.DEVICE) for n in (t.name, *t.aliases)}
    assert {t["name"] for t in devices} == expected
    declared = registry.lookup(registry.DEVICE, "virtio-blk-device").properties
    assert [p["name"] for p in blk] == [p.name for p in declared]
    assert {p["name"]: p.get("default-value") for p in blk}["logical_block_size"] == "512"
    assert {"aia", "aclint", "acpi", "dumpdtb"} <= {p["name"] for p in machine}
    assert {c["name"] for c in cpus} == {"rv64", "max", "rva22s64", "rva23s64"}
