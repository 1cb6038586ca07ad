"""A malicious bare-metal driver (tests/system/programs/virtio_attack.S) attacks the
queues of every virtio device family on the virt board, one pemu run for virtio-mmio
and one for virtio-pci: descriptor
loops, chains longer than the queue, buffers outside RAM and on MMIO, 4 GiB lengths,
nested and 4 GiB indirect tables, an avail index jumping 32768 ahead, the used ring
in the boot ROM, a bad queue size, the descriptor table outside RAM and a head index
out of range.  Each attack must leave the device in DEVICE_NEEDS_RESET with nothing
consumed and the ROM intact; after a reset the device works again; pemu logs the
guest's errors rate-limited, raises no Python exception, and the program's final
heartbeat shows the machine still runs."""

from __future__ import annotations

import re

import pytest

from tests.system import conftest as system_conftest
from tests.system.conftest import run_pemu

build_program = system_conftest.build_program

NEEDS_RESET = 0x40
ATTACKS = 12  # then attack 13: a plain request, which must work after the reset
BAD_SIZE = 10  # virtio-pci ignores a queue_size write that is no power of 2 (as QEMU)
DEVICES = {1: "net", 2: "blk", 3: "serial", 4: "rng", 5: "balloon", 8: "scsi", 9: "9p",
           19: "vsock"}
LINE = re.compile(r"^D([0-9a-f]+) A([0-9a-f]+) S([0-9a-f]+) U([0-9a-f]+) R([0-9a-f]+)$")


@pytest.mark.parametrize("transport", ["device", "pci"])  # virtio-mmio: virtio-*-device
def test_virtio_queue_attacks(build_program, tmp_path, transport):  # noqa: F811
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    share = tmp_path / "share"
    share.mkdir()
    program = build_program("virtio_attack", **({"PCI": 1} if transport == "pci" else {}))
    t = transport
    r = run_pemu(
        "-M", "virt", "-bios", "none", "-nographic", "-kernel", str(program),
        "-drive", f"file={disk},format=raw,if=none,id=d0",
        "-device", f"virtio-blk-{t},drive=d0",
        "-netdev", "user,id=n0", "-device", f"virtio-net-{t},netdev=n0",
        "-device", f"virtio-serial-{t}", "-device", f"virtio-scsi-{t}",
        "-fsdev", f"local,id=f0,path={share},security_model=none",
        "-device", f"virtio-9p-{t},fsdev=f0,mount_tag=t",
        "-device", f"virtio-balloon-{t}",
        "-device", f"virtio-vsock-{t},guest-cid=3,uds-path={tmp_path}/vsock",
        "-device", f"virtio-rng-{t}", timeout=180)
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    assert r.returncode == 0, f"check {r.returncode} failed: {out} {err}"
    assert "HEARTBEAT" in out and "Traceback" not in err, err
    results: dict[str, dict[int, tuple[int, int, int]]] = {}
    for line in out.splitlines():
        m = LINE.match(line.strip())
        if m:
            dev, attack, status, used, rom = (int(g, 16) for g in m.groups())
            results.setdefault(DEVICES[dev], {})[attack] = (status, used, rom)
    assert set(results) == set(DEVICES.values()), out
    for name, by_attack in results.items():
        assert sorted(by_attack) == list(range(1, ATTACKS + 2)), (name, by_attack)
        for attack in range(1, ATTACKS + 1):
            status, used, rom = by_attack[attack]
            assert rom == 0, (name, attack)
            if attack == BAD_SIZE and transport == "pci":
                continue  # the queue kept its size: whatever the device made of it
            assert status & NEEDS_RESET, (name, attack, hex(status))
            assert used == 0, (name, attack, used)
        status, used, _ = by_attack[ATTACKS + 1]
        assert not status & NEEDS_RESET, (name, hex(status))
        if name == "rng":
            assert used == 1  # it filled the buffer: the device works after the resets
        # one line a second at most per device, whatever the guest does
        logged = [x for x in err.splitlines() if "needs reset" in x]
        assert len(logged) < len(DEVICES) * ATTACKS // 2, err


NVME_LINE = re.compile(r"^N([0-9a-f]+) C([0-9a-fT]+)$")


def test_nvme_attacks(build_program, tmp_path):  # noqa: F811 - the fixture above
    """tests/system/programs/nvme_attack.S: bad PRPs and PRP lists, queues too big or
    outside RAM, doorbell misuse; each gets its NVMe status, the ROM stays intact and
    the controller still serves the I/O queue at the end."""
    from pemu.hw.nvme import spec as S
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    r = run_pemu("-M", "virt", "-bios", "none", "-nographic",
                 "-kernel", str(build_program("nvme_attack")),
                 "-drive", f"file={disk},format=raw,if=none,id=d0",
                 "-device", "nvme,drive=d0,serial=attack", timeout=180)
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    assert r.returncode == 0, f"check {r.returncode} failed: {out} {err}"
    assert "HEARTBEAT" in out and "R0" in out.split(), out  # the ROM did not change
    assert "Traceback" not in err, err
    got = {int(m[1], 16): m[2] for m in map(NVME_LINE.match, out.split("\n")) if m}
    want = {1: S.DATA_TRANSFER_ERROR,   # Identify into no memory
            2: S.SUCCESS,               # Identify into the ROM: the write is dropped
            3: S.PRP_OFFSET_INVALID,    # PRP1 not dword aligned
            4: S.INVALID_QUEUE_SIZE,    # a CQ of 65536 entries
            5: S.DATA_TRANSFER_ERROR,   # a CQ outside RAM
            6: S.SUCCESS, 7: S.SUCCESS,  # the real I/O queue pair
            8: S.DATA_TRANSFER_ERROR,   # PRP list pointer outside RAM
            9: S.DATA_TRANSFER_ERROR,   # PRP list entries outside RAM
            11: S.SUCCESS}              # a flush after the doorbell misuse
    assert {n: int(got[n], 16) for n in want} == want, got
    assert got[10] != "T"  # a PRP list chained to itself: answered, not a hang


AHCI_LINE = re.compile(r"^H([0-9a-f]+) T([0-9a-f]+) I([0-9a-f]+)$")


def test_ahci_attacks(build_program, tmp_path):  # noqa: F811 - the fixture above
    """tests/system/programs/ahci_attack.S: PRDs outside RAM, odd, aimed at the ROM or
    too short, 65535 PRD entries, the command table outside RAM: a task file error
    (ERR + ABRT, PxIS.TFES) for each, the ROM intact, and a read works at the end."""
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    r = run_pemu("-M", "virt", "-bios", "none", "-nographic",
                 "-kernel", str(build_program("ahci_attack")),
                 "-drive", f"file={disk},format=raw,if=none,id=d0",
                 "-device", "ich9-ahci,id=ahci", "-device", "ide-hd,drive=d0,bus=ahci.0",
                 timeout=180)
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    assert r.returncode == 0, f"check {r.returncode} failed: {out} {err}"
    assert "HEARTBEAT" in out and "R0" in out.split(), out  # the ROM did not change
    assert "Traceback" not in err, err
    got = {int(m[1], 16): (int(m[2], 16), int(m[3], 16))
           for m in map(AHCI_LINE.match, out.split("\n")) if m}
    assert sorted(got) == list(range(1, 8)), out  # every command finished, one way or another
    for n in (1, 2, 3, 5, 6):
        tfd, irq = got[n]
        assert tfd & 0x01 and (tfd >> 8) & 0x04 and irq & (1 << 30), (n, hex(tfd), hex(irq))
    for n in (4, 7):  # the ROM read (dropped) and the last plain read succeed
        assert not got[n][0] & 0x01, (n, got[n])
