"""cpr-transfer (live update) of a KVM microvm guest: the bare-metal heartbeat's RAM
is a memfd (``-object memory-backend-memfd -machine memory-backend=``) that the new
pemu-system-x86_64 maps under KVM's memory slot; no page is copied.  The beats go on
with the checksum of RAM the guest reads back, without a gap over a second, and both
processes map the same memfd (~10 s).  Skips where KVM cannot run the heartbeat."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.kvm.heartbeat import beats, check_continues, check_heartbeat, kvm_cmd, machine_args
from tests.kvm.test_vmstate import _wait_beats, _wait_listening
from tests.migration.pemu_process import Pemu, memfd_ram_inode

MEMFD = ["-object", "memory-backend-memfd,id=ram0,size=32M",
         "-machine", "memory-backend=ram0"]


@pytest.fixture(scope="module")
def heartbeat(kvm, guest) -> str:
    return str(guest("heartbeat"))


def _socket(path: str) -> dict:
    return {"transport": "socket", "type": "unix", "path": path}


def test_cpr_transfer_of_a_kvm_guest(heartbeat, tmp_path):
    main, cpr = str(tmp_path / "main.sock"), str(tmp_path / "cpr.sock")
    src = Pemu(tmp_path, *machine_args(heartbeat, *MEMFD), name="src", command=kvm_cmd)
    dst = Pemu(tmp_path, *machine_args(heartbeat, *MEMFD), "-incoming", f"unix:{main}",
               "-incoming", json.dumps({"channel-type": "cpr", "addr": _socket(cpr)}),
               name="dst", command=kvm_cmd)
    try:
        _wait_beats(src, 3)
        _wait_listening(cpr)
        src.qmp.cmd("migrate-set-parameters", mode="cpr-transfer")
        src.qmp.cmd("migrate", channels=[{"channel-type": "main", "addr": _socket(main)},
                                         {"channel-type": "cpr", "addr": _socket(cpr)}])
        info = src.wait_migration({"completed", "failed"}, timeout=60)
        assert info["status"] == "completed", (info, dst.err)
        assert info["ram"]["transferred"] < 64 << 10, info  # devices and CPUs only
        assert memfd_ram_inode(src.proc.pid) == memfd_ram_inode(dst.proc.pid)
        after = _wait_beats(dst, 3)
        assert src.finish() == 0
        src_beats = beats(src.lines, src.stamps)
        check_heartbeat(src_beats)
        check_heartbeat(after)  # the RAM the guest reads back is the same
        check_continues(src_beats, src.lines, after)
        gap = after[0].stamp - src_beats[-1].stamp
        print(f"KVM cpr-transfer: downtime {info['downtime']} ms, beat gap "
              f"{gap * 1000:.0f} ms")
        period = (src_beats[-1].stamp - src_beats[0].stamp) / max(len(src_beats) - 1, 1)
        assert gap < period * (after[0].number - src_beats[-1].number) + 1.0, gap
        assert os.path.exists(f"/proc/{dst.proc.pid}")
        time.sleep(0.2)
        assert dst.proc.poll() is None
    finally:
        src.finish()
        dst.finish()
