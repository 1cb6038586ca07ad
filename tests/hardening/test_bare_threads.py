"""threads.start_bare: a helper thread without the threading module's bookkeeping
(user mode's signal wakeup, started in every program the binfmt server forks) still
starts with the process signals blocked, and named in the host when asked."""

from __future__ import annotations

import signal
import threading

from pemu import threads


def _run_bare(name: str) -> dict:
    seen: dict = {}
    done = threading.Event()

    def probe(tag: str) -> None:
        seen["tag"] = tag
        seen["blocked"] = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        tid = threading.get_native_id()
        seen["tid"] = tid
        with open(f"/proc/self/task/{tid}/comm") as f:
            seen["comm"] = f.read().strip()
        done.set()

    threads.start_bare(probe, "argument", name=name)
    assert done.wait(10)
    return seen


def test_a_bare_thread_blocks_the_process_signals_and_the_caller_keeps_its_mask():
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    seen = _run_bare("pemu-probe")
    assert seen["tag"] == "argument"
    assert threads.MAIN_THREAD_SIGNALS <= seen["blocked"]
    assert seen["tid"] != threading.get_native_id()
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


def test_a_bare_thread_is_named_in_the_host_when_asked(monkeypatch):
    monkeypatch.setattr(threads, "name_host_threads", True)
    seen = _run_bare("pemu-probe-name-that-is-long")
    assert seen["comm"] == "pemu-probe-name"  # the kernel keeps 15 bytes
    assert threads.MAIN_THREAD_SIGNALS <= seen["blocked"]
    monkeypatch.setattr(threads, "name_host_threads", False)
    assert _run_bare("other")["comm"] != "other"  # not named: the process's name
