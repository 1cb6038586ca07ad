"""A whole machine through the state stream: a bare-metal heartbeat (ticker.S) is
saved mid-run, loaded into a second board, and keeps counting from where it was."""

from __future__ import annotations

import io
import threading
import time

import pytest

from pemu.hw.riscv.virt import VirtBoard
from pemu.migration import MigrationError
from pemu.migration.machine_state import load_machine, save_machine
from pemu.migration.stream import StreamError, StreamReader, StreamWriter, bytes_source
from pemu.monitor.riscv_board import RiscvBoardMonitor
from pemu.qemuopts.config import SystemConfig
from tests.system import conftest as system_conftest

build_program = system_conftest.build_program  # the fixture, shared with tests/system


def _board(elf: str) -> tuple[VirtBoard, RiscvBoardMonitor]:
    cfg = SystemConfig(bios="none", kernel=elf, ram_size=64 << 20)
    board = VirtBoard(cfg)
    board.reset()
    return board, RiscvBoardMonitor(board, cfg)


class Running:
    """A board running on a thread, paused and stopped by the test."""

    def __init__(self, elf: str) -> None:
        self.board, self.monitor = _board(elf)
        self.status: list[int] = []
        self.thread = threading.Thread(target=lambda: self.status.append(self.board.run()),
                                       daemon=True)

    def start(self) -> Running:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.board.request_exit(0, "test over")
        self.monitor._open.set()
        self.thread.join(30)


def _tick(board: VirtBoard) -> int:
    """The heartbeat count the guest keeps in s0."""
    return board.harts[0].state.x(8)


@pytest.fixture(scope="module")
def ticker(build_program):  # noqa: F811 - the fixture above
    return str(build_program("ticker", TICK_PERIOD=200000))  # 20 ms ticks


def _save(board: VirtBoard) -> bytes:
    out = io.BytesIO()
    save_machine(board, StreamWriter(out.write))
    return out.getvalue()


def _load(board: VirtBoard, data: bytes) -> None:
    load_machine(board, StreamReader(bytes_source(data)))


def test_saved_machine_runs_on_in_another_board(ticker):
    src = Running(ticker).start()
    time.sleep(1.0)
    src.monitor.stop()
    saved_tick = _tick(src.board)
    data = _save(src.board)
    src.stop()
    assert saved_tick > 3, "the guest did not run"
    # 64 MiB of RAM, almost all zero: the stream carries only the used pages
    assert len(data) < 1 << 20

    dst = Running(ticker)
    dst.monitor.stop()
    _load(dst.board, data)
    assert _tick(dst.board) == saved_tick
    dst.start()
    dst.monitor.cont()
    time.sleep(1.0)
    dst.monitor.stop()
    resumed = _tick(dst.board)
    dst.stop()
    # the guest checks its RAM counter against s0 at every tick and exits 7 if they differ
    assert dst.status == [0]
    assert resumed > saved_tick


def test_damaged_streams_are_refused_with_a_reason(ticker):
    board, _ = _board(ticker)
    data = _save(board)
    dst, _ = _board(ticker)
    for damaged, reason in ((data[:len(data) // 2], "truncated"),
                            (data[:-1], "truncated"),
                            (b"XXXX" + data[4:], "bad magic"),
                            (data[:40] + bytes([data[40] ^ 1]) + data[41:], ""),
                            (data[:-3] + bytes([data[-3] ^ 0x10]) + data[-2:], "checksum")):
        with pytest.raises((StreamError, MigrationError)) as e:
            _load(dst, damaged)
        assert reason in str(e.value)


def test_a_stream_of_another_machine_is_refused(ticker):
    board, _ = _board(ticker)
    data = _save(board)
    other = VirtBoard(SystemConfig(bios="none", kernel=ticker, ram_size=32 << 20))
    with pytest.raises(StreamError, match="another machine"):
        _load(other, data)
