"""The system emulators' command lines are honest: every option either works or is
refused with a one-line error naming it, and every ``help`` listing is exactly what the
type registry holds."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from pemu.hw import all_types  # noqa: F401 - fills the registry the listings come from
from pemu.qom import registry
from tests.system.conftest import ROOT, pemu_env

EMULATORS = {"riscv64": "pemu.cli.system_riscv64", "x86_64": "pemu.cli.system_x86_64"}


def emulator(arch: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", EMULATORS[arch], *args], env=pemu_env(),
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def refused(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


# Options that used to be accepted and then silently ignored.
NOT_IMPLEMENTED = [
    (["-nic", "vde"], "-nic vde"),
    (["-netdev", "l2tpv3,id=n0"], "-netdev l2tpv3,id=n0"),
    (["-netdev", "vde,id=n0"], "-netdev vde,id=n0"),
    (["-netdev", "user,id=n0,smb=/tmp"], "smb"),
    (["-icount", "shift=1"], "-icount"),
    (["-rtc", "base=localtime"], "-rtc base=localtime"),
    (["-rtc", "driftfix=slew"], "-rtc driftfix=slew"),
]


@pytest.mark.parametrize("arch", sorted(EMULATORS))
@pytest.mark.parametrize(("args", "named"), NOT_IMPLEMENTED,
                         ids=[" ".join(a[0]) for a in NOT_IMPLEMENTED])
def test_unimplemented_options_are_refused(arch, args, named):
    refused(emulator(arch, *args), named, "not")


@pytest.mark.parametrize("args", [["-nic", "none"], ["-sandbox", "off"],
                                  ["-sandbox", "on,spawn=deny,elevateprivileges=children"],
                                  ["-runas", "nobody"], ["-run-with", "user=nobody,chroot=/"],
                                  ["-rtc", "base=utc,clock=host"]])
def test_options_that_describe_what_pemu_does_are_accepted(args):
    # -M help answers after the whole command line was parsed: the option passed
    r = emulator("riscv64", *args, "-M", "help")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(("arch", "args", "named"), [
    ("riscv64", ["-M", "virt,aia=aplic-msi"], "aia=aplic-msi"),
    ("riscv64", ["-M", "virt,aclint=on"], "aclint=on"),
    ("riscv64", ["-M", "virt,bogus=1"], "virt.bogus"),
    ("riscv64", ["-M", "spike,aia=none"], "spike.aia"),
    ("riscv64", ["-M", "nosuch"], "-M nosuch"),
    ("riscv64", ["-cpu", "nosuch"], "-cpu nosuch"),
    ("riscv64", ["-accel", "tcg,bogus=1"], "bogus"),
    ("riscv64", ["-d", "exec"], "-d exec"),
    ("x86_64", ["-M", "microvm,graphics=on"], "graphics=on"),
    ("x86_64", ["-accel", "kvm,bogus=1"], "bogus"),
    ("x86_64", ["-d", "int"], "-d int"),
    ("x86_64", ["-no-shutdown"], "-no-shutdown"),  # the RISC-V boards implement it
    ("riscv64", ["-sandbox", "on,spawn=maybe"], "invalid argument for spawn"),
    ("riscv64", ["-sandbox", "on,bogus=deny"], "Invalid parameter 'bogus'"),
    ("riscv64", ["-run-with", "group=x"], "Invalid parameter 'group'"),
])
def test_unknown_properties_and_values_are_refused(arch, args, named):
    base = ["-kernel", "/nonexistent"] if arch == "x86_64" else ["-bios", "none"]
    if arch == "x86_64" and "-accel" not in args:
        base += ["-accel", "kvm"]
    refused(emulator(arch, *base, "-nographic", *args), named)


def test_device_properties_are_checked(tmp_path):
    disk = tmp_path / "d.raw"
    disk.write_bytes(bytes(1 << 20))
    r = emulator("riscv64", "-M", "virt", "-bios", "none", "-kernel", "/dev/null",
                 "-nographic", "-drive", f"file={disk},format=raw,if=none,id=d0",
                 "-device", "virtio-blk-device,drive=d0,bogus=1")
    refused(r, "virtio-blk-device", "bogus")
    r = emulator("riscv64", "-M", "virt", "-nographic", "-device", "e1000")
    refused(r, "-device e1000", "virtio-blk-device")


@pytest.mark.parametrize("arch", sorted(EMULATORS))
def test_machine_and_cpu_help_list_the_registry(arch):
    r = emulator(arch, "-M", "help")
    assert r.returncode == 0
    listed = {line.split()[0] for line in r.stdout.splitlines()[1:]}
    assert listed == {t.name for t in registry.types(registry.MACHINE, arch)}
    assert listed  # a target has at least one machine
    r = emulator(arch, "-cpu", "help")
    assert r.returncode == 0
    listed = {line.split()[0] for line in r.stdout.splitlines()[1:]}
    assert listed == {t.name for t in registry.types(registry.CPU, arch)}


@pytest.mark.parametrize("arch", sorted(EMULATORS))
def test_device_help_lists_the_registry(arch):
    r = emulator(arch, "-device", "help")
    assert r.returncode == 0
    listed = set(re.findall(r'^name "([^"]+)"', r.stdout, re.M))
    buses = ["virtio-bus", "PCI", "nvme-bus", "IDE", "SCSI"] if arch == "riscv64" \
        else ["virtio-bus"]  # virt: PCIe, and the buses of its storage controllers
    buses.append("virtio-serial-bus")  # virtserialport, virtconsole
    assert listed == {t.name for t in registry.types(registry.DEVICE, buses=buses)}
    for info in registry.types(registry.DEVICE):
        r = emulator(arch, "-device", f"{info.name},help")
        assert r.returncode == 0
        props = re.findall(r"^  ([\w-]+)=<", r.stdout, re.M)
        assert props == [p.name for p in info.properties]
    refused(emulator(arch, "-device", "nosuch,help"), "nosuch")


@pytest.mark.parametrize("arch", sorted(EMULATORS))
def test_chardev_help_lists_the_registry(arch):
    r = emulator(arch, "-chardev", "help")
    assert r.returncode == 0, r.stderr
    heading, *rest = r.stdout.splitlines()
    assert heading == "Available chardev backend types: "  # QEMU's line, space included
    listed = [line.strip() for line in rest]
    assert all(line.startswith("  ") for line in rest)
    assert set(listed) == {t.name for t in registry.types(registry.CHARDEV)}
    assert {"null", "file", "stdio", "socket", "pty"} <= set(listed)
    for info in registry.types(registry.CHARDEV):
        r = emulator(arch, "-chardev", f"{info.name},help")
        assert r.returncode == 0
        props = re.findall(r"^  ([\w-]+)=<", r.stdout, re.M)
        assert props == [p.name for p in info.properties]


@pytest.mark.skipif(shutil.which("qemu-system-riscv64") is None, reason="no QEMU")
def test_chardev_help_has_qemus_shape():
    ours = emulator("riscv64", "-chardev", "help").stdout.splitlines()
    theirs = subprocess.run(["qemu-system-riscv64", "-chardev", "help"], capture_output=True,
                            text=True, timeout=30, check=True).stdout.splitlines()
    assert ours[0] == theirs[0]
    assert set(ours[1:]) <= set(theirs[1:])  # every pemu backend is one of QEMU's


@pytest.mark.parametrize("arch", sorted(EMULATORS))
@pytest.mark.parametrize(("args", "named"), [
    (["-chardev", "ringbof,id=c0"], "'ringbof' is not a valid char driver name"),
    (["-chardev", "null,id=c0,colour=red"], "Invalid parameter 'colour'"),
    (["-chardev", "socket,id=c0,port=1,server=maybe"], "server"),
    (["-chardev", "nosuch,help"], "nosuch"),
])
def test_chardev_backend_and_option_errors(arch, args, named):
    refused(emulator(arch, "-nographic", *args), named)


def test_chardev_without_its_required_option():
    refused(emulator("riscv64", "-nographic", "-bios", "none", "-kernel", "/dev/null",
                     "-chardev", "file,id=c0"), "-chardev file", "parameter 'path' is missing")


@pytest.mark.parametrize(("arch", "items"), [("riscv64", {"int", "in_asm", "op", "op_opt",
                                                          "stats"}),
                                             ("x86_64", {"guest_errors"})])
def test_d_help_and_h_exit_0(arch, items):
    r = emulator(arch, "-d", "help")
    assert r.returncode == 0
    assert {line.split()[0] for line in r.stdout.splitlines()[1:]} == items
    for flag in ("-h", "-help"):
        r = emulator(arch, flag)
        assert r.returncode == 0 and "-kernel" in r.stdout


@pytest.mark.parametrize("arch", sorted(EMULATORS))
def test_version_line_is_qemus_shape(arch):
    r = emulator(arch, "-version")
    assert r.returncode == 0
    assert re.match(r"QEMU emulator version \d+\.\d+\.\d+ \(pemu ", r.stdout)


@pytest.mark.parametrize("option", ["-qmp", "-monitor", "-gdb"])
def test_socket_in_a_missing_directory_is_a_one_line_error(option):
    spec = "unix:/nonexistent-dir/s" + (",server=on,wait=off" if option != "-gdb" else "")
    r = emulator("riscv64", "-M", "virt", "-nographic", option, spec)
    refused(r, "/nonexistent-dir/s", "No such file")


def test_reference_page_is_generated_from_the_registry():
    """docs/REFERENCE.md is exactly what ``python3 -m pemu.cli.reference`` prints."""
    from pemu.cli.reference import reference

    page = (ROOT / "docs" / "REFERENCE.md").read_text()
    assert page == reference(), "run: python3 -m pemu.cli.reference > docs/REFERENCE.md"
    for info in registry.types(registry.DEVICE) + registry.types(registry.CHARDEV):
        assert f"| `{info.name}` |" in page
