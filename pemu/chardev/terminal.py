"""Raw mode for the controlling terminal, undone on every way out of the process.

pemu puts the terminal in raw mode for ``-serial stdio`` so the guest sees every key.
If pemu then dies (normal exit, an exception, SIGTERM, SIGHUP, SIGINT when Ctrl-C
still raises signals) the user's shell must get its terminal back, so the saved
attributes are restored from atexit and from signal handlers chained in front of
whatever handler was there before.
"""

from __future__ import annotations

import atexit
import os
import signal
import termios
import threading

_saved: dict[int, list] = {}
_lock = threading.Lock()
_hooks_installed = False
_previous_handlers: dict[int, object] = {}
_RESTORE_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)


def set_raw(fd: int, allow_signals: bool) -> bool:
    """Raw input, cooked output (so ``\\n`` still returns the carriage). False if no tty."""
    if not os.isatty(fd):
        return False
    with _lock:
        if fd not in _saved:
            _saved[fd] = termios.tcgetattr(fd)
        attrs = termios.tcgetattr(fd)
        iflag, oflag, cflag, lflag = attrs[0], attrs[1], attrs[2], attrs[3]
        iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                   | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
        oflag |= termios.OPOST
        lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.IEXTEN)
        if allow_signals:
            lflag |= termios.ISIG
        else:
            lflag &= ~termios.ISIG
        attrs[0], attrs[1], attrs[2], attrs[3] = iflag, oflag, cflag, lflag
        attrs[6] = list(attrs[6])
        attrs[6][termios.VMIN] = 1
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        _install_hooks()
    return True


def restore_all() -> None:
    """Put every terminal we touched back as we found it.  Idempotent."""
    with _lock:
        for fd, attrs in list(_saved.items()):
            try:
                termios.tcsetattr(fd, termios.TCSANOW, attrs)
            except (termios.error, OSError):
                pass
        _saved.clear()


def _on_signal(signum: int, frame: object) -> None:
    restore_all()
    prev = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(prev):
        prev(signum, frame)
        return
    if prev == signal.SIG_IGN:
        return
    # Default action: die of the same signal so the parent sees the right status.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(restore_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still works
    for sig in _RESTORE_SIGNALS:
        prev = signal.getsignal(sig)
        if prev is _on_signal:
            continue
        _previous_handlers[sig] = prev
        signal.signal(sig, _on_signal)
