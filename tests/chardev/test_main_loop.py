"""The I/O thread: readers, timers, call_soon from other threads, broken callbacks."""

from __future__ import annotations

import os
import threading

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


def test_fd_closed_behind_the_loops_back_is_dropped():
    loop = MainLoop()
    r, w = os.pipe()
    loop.add_reader(r, lambda: None)
    os.close(r)
    os.close(w)
    loop.run_once(0)  # must not raise
    loop.run_once(0)


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
