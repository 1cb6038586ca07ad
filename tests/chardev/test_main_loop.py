"""The I/O thread: readers, timers, call_soon from other threads, broken callbacks."""

from __future__ import annotations

import os
import selectors
import threading

import pytest

from pemu.main_loop import MainLoop


def test_reader_timer_and_call_soon():
    loop = MainLoop()
    loop.start()
    try:
        r, w = os.pipe()
        got, done = [], threading.Event()

        def on_read():
            got.append(os.read(r, 100))
            done.set()

        loop.add_reader(r, on_read)
        os.write(w, b"x")
        assert done.wait(5) and got == [b"x"]
        loop.remove_reader(r)

        order, fired = [], threading.Event()
        loop.add_timer(0.02, lambda: (order.append("late"), fired.set()))
        loop.add_timer(0.0, lambda: order.append("early"))
        cancelled = loop.add_timer(0.01, lambda: order.append("cancelled"))
        cancelled.cancel()
        assert fired.wait(5)
        assert order == ["early", "late"]

        ran = threading.Event()
        threads = [threading.Thread(target=loop.call_soon, args=(ran.set,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert ran.wait(5)
        assert threading.current_thread() is not loop._thread
        os.close(r)
        os.close(w)
    finally:
        loop.stop()
    assert not loop.running


def test_a_failing_callback_does_not_kill_the_loop(capsys):
    loop = MainLoop()
    loop.start()
    try:
        ok = threading.Event()
        loop.call_soon(lambda: 1 / 0)
        loop.call_soon(ok.set)
        assert ok.wait(5)
        assert loop.running
    finally:
        loop.stop()
    assert "ZeroDivisionError" in capsys.readouterr().err


def _watched_fds(loop: MainLoop) -> set[int]:
    """The fds the loop really waits on: epoll's kernel interest list (the kernel drops a
    closed fd from it by itself), else the selector's own map (select() needs pruning)."""
    sel = loop._sel
    if isinstance(sel, getattr(selectors, "EpollSelector", ())):
        with open(f"/proc/self/fdinfo/{sel.fileno()}") as f:
            return {int(line.split()[1]) for line in f if line.startswith("tfd:")}
    return set(sel.get_map())


@pytest.fixture(params=[name for name in ("EpollSelector", "SelectSelector")
                        if hasattr(selectors, name)])
def selector_kind(request, monkeypatch):
    """Run the loop on each selector this host has: epoll (Linux's default) and select()
    (where select() fails with EBADF and the loop must prune the dead fd itself)."""
    monkeypatch.setattr(selectors, "DefaultSelector", getattr(selectors, request.param))
    return request.param


def test_fd_closed_behind_the_loops_back_is_dropped(selector_kind, capfd):
    loop = MainLoop()
    assert type(loop._sel).__name__ == selector_kind
    live_r, live_w = os.pipe()
    live = []
    loop.add_reader(live_r, lambda: live.append(os.read(live_r, 10)))
    dead_r, dead_w = os.pipe()
    dead = []
    loop.add_reader(dead_r, lambda: dead.append(os.read(dead_r, 10)))
    assert {live_r, dead_r} <= _watched_fds(loop)
    os.close(dead_r)  # behind the loop's back: no remove_reader
    os.close(dead_w)

    loop.run_once(0)  # must not raise
    assert dead_r not in _watched_fds(loop)
    assert live_r in _watched_fds(loop)

    # the loop goes on serving the other fd
    os.write(live_w, b"a")
    loop.run_once(1)
    assert live == [b"a"]

    # a new file that takes the dead fd's number, never registered, must not wake the
    # dead fd's callback: the old registration is really gone
    new_r, new_w = os.pipe()  # most likely gets the dead numbers back by itself
    if new_w == dead_r:
        new_w = os.dup(new_w)
    if new_r != dead_r:
        os.dup2(new_r, dead_r)
        os.close(new_r)
    try:
        os.write(new_w, b"stale")
        loop.run_once(0.05)
        os.write(live_w, b"b")
        loop.run_once(1)
        assert dead == []
        assert live == [b"a", b"b"]
        assert os.read(dead_r, 10) == b"stale"  # still unread: nobody consumed it
    finally:
        for fd in (dead_r, new_w, live_r, live_w):
            os.close(fd)
    assert "error in I/O callback" not in capfd.readouterr().err


def test_fd_number_reused_after_close_without_remove():
    loop = MainLoop()
    r, w = os.pipe()
    loop.add_reader(r, lambda: None)
    os.close(r)
    os.close(w)
    r2, w2 = os.pipe()  # very likely the same numbers again
    hits = []
    loop.add_reader(r2, lambda: hits.append(os.read(r2, 10)))
    os.write(w2, b"z")
    loop.run_once(1)
    assert hits == [b"z"]
    os.close(r2)
    os.close(w2)
