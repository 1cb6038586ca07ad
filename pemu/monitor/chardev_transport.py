"""A monitor on a chardev: ``-mon chardev=ID``, ``-monitor stdio``, ``mon:stdio``.

For socket chardevs the monitor starts a fresh session (greeting included) for each
new client, as QEMU does: on the chardev's OPENED event, or, for one without events,
when an I/O-loop timer sees its ``connected`` flag rise.  Other chardevs (stdio, a mux
port, a pty) have one session for the life of the machine; on a mux it is greeted
when Ctrl-A c first gives it the focus.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.chardev.base import CHR_EVENT_OPENED
from pemu.main_loop import get_main_loop

POLL_INTERVAL = 0.05


class ChardevMonitor:
    def __init__(self, chardev, session_factory: Callable[[Callable[[bytes], None], bool], object],
                 mode: str) -> None:
        self.chardev = chardev
        self.factory = session_factory
        self.mode = mode
        self.session = None
        self._closed = False
        self._timer = None
        self._polling = hasattr(chardev, "connected")
        if self._polling:  # a socket chardev: one session per client
            chardev.set_receiver(self._on_input)
            if hasattr(chardev, "set_event_handler"):
                # each OPENED is a new client, even one that came within a poll
                # interval of the last one leaving (libvirt's next connection): it
                # must get a fresh session and greeting, not the last one's
                self._polling = False
                chardev.set_event_handler(self._on_event)
                return
            self._poll()
            return
        is_mux_port = hasattr(chardev, "on_focus")
        # Terminals are in raw mode: the HMP line editor must echo what the user types.
        self.session = session_factory(chardev.write, mode != "control")
        chardev.set_receiver(self._on_input)
        if is_mux_port:
            self._greeted = False
            chardev.on_focus = self._on_focus
            if chardev.mux.focused() is chardev:
                self._on_focus(True)
        else:
            self.session.start()

    def _on_focus(self, focused: bool) -> None:
        if not focused or self.session is None:
            return
        if not self._greeted:
            self._greeted = True
            self.session.start()
        elif hasattr(self.session, "prompt"):
            self.session.prompt()

    def _on_input(self, data: bytes) -> None:
        session = self.session
        if session is None and self._polling and self.chardev.connected:
            # a client that speaks before the next poll (openssl s_client sends at
            # once) must not lose its first commands: greet it now
            session = self.session = self._client_session()
            session.start()
        if session is not None:
            session.feed(data)

    def _on_event(self, event: str) -> None:
        if self._closed:
            return
        if self.session is not None:  # the last client's session ends with it
            self.session.close()
            self.session = None
        if event == CHR_EVENT_OPENED:
            self.session = self._client_session()
            self.session.start()

    def _client_session(self):
        """A session for the socket chardev's new client; what it passes with
        SCM_RIGHTS goes to add-fd/getfd (libvirt's getfd before migrate "fd:NAME")."""
        session = self.factory(self.chardev.write, False)
        passed = getattr(self.chardev, "passed_fds", None)
        if passed is not None:
            session.passed_fds = passed
        return session

    def _poll(self) -> None:
        if self._closed:
            return
        connected = self.chardev.connected
        if connected and self.session is None:
            self.session = self._client_session()
            self.session.start()
        elif not connected and self.session is not None:
            self.session.close()
            self.session = None
        self._timer = get_main_loop().add_timer(POLL_INTERVAL, self._poll)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self.session is not None:
            self.session.close()
            self.session = None
