"""libvirt's probe without libvirt: pemu started with the exact command line libvirt
9.0 uses (-machine none, -daemonize, -pidfile), then every introspection command
libvirt sends, checked against what pemu really has (qemu.qmp as the client)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
from qemu.qmp import ExecuteError, QMPClient

from pemu.hw import all_types  # noqa: F401 - the registry the answers come from
from pemu.qom import registry
from tests.system.conftest import ROOT, pemu_env

PROBE_ARGS = ["-S", "-no-user-config", "-nodefaults", "-nographic",
              "-machine", "none,accel=kvm:tcg"]


def start_probe(tmp_path, *extra: str) -> tuple[subprocess.CompletedProcess, str, str]:
    """Run pemu as libvirt does; returns (the parent's result, QMP socket, pid file)."""
    sock, pidfile = str(tmp_path / "qmp.monitor"), str(tmp_path / "qmp.pid")
    cmd = [sys.executable, "-m", "pemu.cli.system_riscv64", *PROBE_ARGS,
           "-qmp", f"unix:{sock},server=on,wait=off", "-pidfile", pidfile, "-daemonize",
           *extra]
    r = subprocess.run(cmd, env=pemu_env(), cwd=ROOT, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    return r, sock, pidfile


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def probed(tmp_path):
    """A daemonized none machine; yields (socket, pid); killed at the end if need be."""
    r, sock, pidfile = start_probe(tmp_path)
    assert r.returncode == 0, r.stderr
    pid = int(open(pidfile).read())
    assert pid != os.getpid() and _alive(pid)
    yield sock, pid, pidfile
    if _alive(pid):
        os.kill(pid, 9)


async def _ask(sock: str, calls: list[tuple[str, dict | None]]) -> list[object]:
    client = QMPClient("probe")
    await client.connect(sock)
    out: list[object] = []
    for name, args in calls:
        try:
            out.append(await client.execute(name, args))
        except ExecuteError as e:
            out.append(e)
    await client.disconnect()
    return out


def ask(sock: str, *calls: tuple[str, dict | None]) -> list[object]:
    return asyncio.run(asyncio.wait_for(_ask(sock, list(calls)), 60))


def _schema_type_names(info: dict) -> list[str]:
    """The type names one SchemaInfo entry refers to."""
    meta = info["meta-type"]
    if meta == "command":
        return [info["arg-type"], info["ret-type"]]
    if meta == "event":
        return [info["arg-type"]]
    if meta == "array":
        return [info["element-type"]]
    if meta == "object":
        return [m["type"] for m in info["members"]] + [
            v["type"] for v in info.get("variants", [])]
    if meta == "alternate":
        return [m["type"] for m in info["members"]]
    return []


def test_daemonize_returns_once_qmp_listens_and_quit_removes_the_pidfile(probed):
    sock, pid, pidfile = probed
    assert os.path.exists(sock)  # the parent returned only after the socket was bound
    status, = ask(sock, ("query-status", None))
    assert status["status"] == "prelaunch" and not status["running"]
    ask(sock, ("quit", None))
    end = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < end:
        time.sleep(0.1)
    assert not _alive(pid)
    assert not os.path.exists(pidfile)


def test_a_failed_start_is_the_parents_status_and_stderr(tmp_path):
    r, _, _ = start_probe(tmp_path, "-chardev", "socket,id=c0,path=/nonexistent/dir/s,"
                                                "server=on,wait=off", "-mon", "chardev=c0")
    assert r.returncode == 1
    assert "/nonexistent/dir/s" in r.stderr and "Traceback" not in r.stderr


def test_daemonize_refuses_what_needs_the_terminal(tmp_path):
    sock = str(tmp_path / "s")
    r = subprocess.run([sys.executable, "-m", "pemu.cli.system_riscv64", "-nographic",
                        "-machine", "none", "-qmp", f"unix:{sock},server=on,wait=off",
                        "-daemonize"], env=pemu_env(), cwd=ROOT, capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert "-nographic cannot be used with -daemonize" in r.stderr


def test_the_introspection_libvirt_reads(probed):
    sock, _, _ = probed
    (version, target, kvm, schema, commands, cmdline, sandbox, bad_option, types,
     machines, tpm_models, tpm_types, caps) = ask(
        sock, ("query-version", None), ("query-target", None), ("query-kvm", None),
        ("query-qmp-schema", None), ("query-commands", None),
        ("query-command-line-options", None),
        ("query-command-line-options", {"option": "sandbox"}),
        ("query-command-line-options", {"option": "nosuch"}),
        ("qom-list-types", None), ("query-machines", None), ("query-tpm-models", None),
        ("query-tpm-types", None), ("query-migrate-capabilities", None))
    q = version["qemu"]
    assert (q["major"], q["minor"]) >= (4, 2)  # libvirt 9.0's minimum
    assert target == {"arch": "riscv64"}
    assert kvm["enabled"] is False
    # a RISC-V guest never runs under KVM on this x86 host
    assert kvm["present"] is (os.uname().machine == "riscv64" and os.path.exists("/dev/kvm"))

    # query-qmp-schema: every command, each type it names resolvable, as libvirt walks it
    by_name = {e["name"]: e for e in schema}
    listed = {c["name"] for c in commands}
    schema_commands = {e["name"] for e in schema if e["meta-type"] == "command"}
    assert schema_commands == listed
    for entry in schema:
        for type_name in _schema_type_names(entry):
            assert type_name in by_name, (entry["name"], type_name)
        if entry["meta-type"] == "enum":
            assert entry["values"] == [m["name"] for m in entry["members"]]
        if entry["meta-type"] == "builtin":
            assert entry["json-type"] in ("string", "int", "number", "boolean", "null",
                                          "value", "object", "array")
    events = {e["name"] for e in schema if e["meta-type"] == "event"}
    assert {"STOP", "RESUME", "SHUTDOWN", "DEVICE_DELETED", "MIGRATION",
            "JOB_STATUS_CHANGE", "VSERPORT_CHANGE"} <= events  # libvirt: agent there?
    add = by_name[by_name["blockdev-add"]["arg-type"]]
    assert {"driver", "node-name"} <= {m["name"] for m in add["members"]}
    assert "device_add" in listed and "query-command-line-options" in listed

    # query-command-line-options: the keys the parsers accept, and only those
    groups = {o["option"]: {p["name"]: p["type"] for p in o["parameters"]} for o in cmdline}
    assert groups["sandbox"]["spawn"] == "string"
    assert groups["smp-opts"]["cores"] == "number"
    assert set(groups["overcommit"]) == {"mem-lock", "cpu-pm"}
    assert "spice" not in groups and "vnc" not in groups
    assert [o["option"] for o in sandbox] == ["sandbox"]
    assert isinstance(bad_option, ExecuteError)

    names = {t["name"] for t in types}
    assert {"none-machine", "virt-machine", "tcg-accel", "virtio-blk-pci", "virtio-net-pci",
            "pcie-root-port", "memory-backend-ram", "memory-backend-file", "gpex-pcihost",
            "virtio-mmio", "virtio-blk-pci-non-transitional", "ich9-ahci", "ide-hd",
            "virtio-scsi-pci", "scsi-hd", "virtio-serial-pci", "virtio-balloon-pci"} <= names
    # what pemu does not have is not listed: no KVM for RISC-V, no USB
    assert not {"kvm-accel", "usb-storage", "microvm-machine"} & names
    assert "memory-backend-memfd" in names  # guest RAM a live update hands over
    devices = {t.name for t in registry.types(registry.DEVICE)}
    assert devices <= names

    machine_names = {m["name"]: m for m in machines}
    assert {"virt", "spike", "none"} <= set(machine_names)
    assert machine_names["virt"].get("is-default") is True
    assert tpm_models == [] and tpm_types == []
    assert {c["capability"] for c in caps} >= {"events"}


def test_properties_are_the_registrys_and_nothing_more(probed):
    sock, _, _ = probed
    blk, net, missing, ram, file_backend, virt, memfd = ask(
        sock, ("device-list-properties", {"typename": "virtio-blk-pci"}),
        ("device-list-properties", {"typename": "virtio-net-pci"}),
        ("device-list-properties", {"typename": "usb-storage"}),
        ("qom-list-properties", {"typename": "memory-backend-ram"}),
        ("qom-list-properties", {"typename": "memory-backend-file"}),
        ("qom-list-properties", {"typename": "virt-machine"}),
        ("qom-list-properties", {"typename": "memory-backend-memfd"}))
    declared = {p.name for p in registry.lookup(registry.DEVICE, "virtio-blk-pci").properties}
    assert {p["name"] for p in blk} == declared
    assert {"drive", "bus", "addr"} <= declared
    # QEMU's properties that pemu does not implement stay absent (libvirt keys on them)
    assert not {"scsi", "iommu_platform", "packed", "num-queues"} & {p["name"] for p in blk}
    assert "mac" in {p["name"] for p in net}
    # libvirt reads DeviceNotFound as "not there"
    assert isinstance(missing, ExecuteError) and missing.error_class == "DeviceNotFound"
    assert {p["name"] for p in ram} == {"type", "size"}
    assert {p["name"] for p in file_backend} == {"type", "size", "share", "mem-path"}
    assert {p["name"] for p in memfd} == {"type", "size", "share"}  # CPR's RAM
    assert {"aia", "acpi"} <= {p["name"] for p in virt}


def test_a_second_pemu_cannot_take_a_held_pidfile(probed, tmp_path):
    _, pid, pidfile = probed
    other = tmp_path / "other"
    other.mkdir()
    sock = str(other / "qmp.sock")
    r = subprocess.run([sys.executable, "-m", "pemu.cli.system_riscv64", *PROBE_ARGS,
                        "-qmp", f"unix:{sock},server=on,wait=off", "-pidfile", pidfile,
                        "-daemonize"], env=pemu_env(), cwd=ROOT, capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "PID file" in r.stderr, r.stderr
    assert int(open(pidfile).read()) == pid  # the first one's file is untouched
