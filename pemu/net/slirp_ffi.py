"""ctypes declarations of libslirp (Debian ``libslirp0``, the library QEMU uses), from
the public facts of its header, libslirp.h 4.7: ``SlirpConfig`` up to version 4,
``SlirpCb``, and the entry points pemu calls.

Every call into a ``Slirp`` instance must come from one thread (libslirp is not
thread-safe); pemu/net/user.py gives each instance a thread of its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import struct
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int,
    c_int64,
    c_size_t,
    c_ssize_t,
    c_uint8,
    c_uint32,
    c_void_p,
)

CONFIG_VERSION = 4

# libslirp's own poll bits (not the system's POLL* values)
SLIRP_POLL_IN = 1 << 0
SLIRP_POLL_OUT = 1 << 1
SLIRP_POLL_PRI = 1 << 2
SLIRP_POLL_ERR = 1 << 3
SLIRP_POLL_HUP = 1 << 4


class InAddr(Structure):
    _fields_ = [("s_addr", c_uint32)]  # network byte order

    @classmethod
    def of(cls, dotted: str) -> InAddr:
        return cls(struct.unpack("=I", socket.inet_aton(dotted))[0])


class In6Addr(Structure):
    _fields_ = [("s6_addr", c_uint8 * 16)]

    @classmethod
    def of(cls, text: str) -> In6Addr:
        return cls((c_uint8 * 16)(*socket.inet_pton(socket.AF_INET6, text)))


class SlirpConfig(Structure):
    _fields_ = [
        ("version", c_uint32),
        # version 1
        ("restricted", c_int),
        ("in_enabled", c_bool),
        ("vnetwork", InAddr),
        ("vnetmask", InAddr),
        ("vhost", InAddr),
        ("in6_enabled", c_bool),
        ("vprefix_addr6", In6Addr),
        ("vprefix_len", c_uint8),
        ("vhost6", In6Addr),
        ("vhostname", c_char_p),
        ("tftp_server_name", c_char_p),
        ("tftp_path", c_char_p),
        ("bootfile", c_char_p),
        ("vdhcp_start", InAddr),
        ("vnameserver", InAddr),
        ("vnameserver6", In6Addr),
        ("vdnssearch", POINTER(c_char_p)),
        ("vdomainname", c_char_p),
        ("if_mtu", c_size_t),
        ("if_mru", c_size_t),
        ("disable_host_loopback", c_bool),
        ("enable_emu", c_bool),
        # version 2
        ("outbound_addr", c_void_p),
        ("outbound_addr6", c_void_p),
        # version 3
        ("disable_dns", c_bool),
        # version 4
        ("disable_dhcp", c_bool),
    ]


SEND_PACKET = CFUNCTYPE(c_ssize_t, c_void_p, c_size_t, c_void_p)
GUEST_ERROR = CFUNCTYPE(None, c_char_p, c_void_p)
CLOCK_GET_NS = CFUNCTYPE(c_int64, c_void_p)
TIMER_CB = CFUNCTYPE(None, c_void_p)
TIMER_NEW = CFUNCTYPE(c_void_p, TIMER_CB, c_void_p, c_void_p)
TIMER_FREE = CFUNCTYPE(None, c_void_p, c_void_p)
TIMER_MOD = CFUNCTYPE(None, c_void_p, c_int64, c_void_p)
REGISTER_POLL_FD = CFUNCTYPE(None, c_int, c_void_p)
NOTIFY = CFUNCTYPE(None, c_void_p)
ADD_POLL = CFUNCTYPE(c_int, c_int, c_int, c_void_p)
GET_REVENTS = CFUNCTYPE(c_int, c_int, c_void_p)
WRITE_CB = CFUNCTYPE(c_ssize_t, c_void_p, c_size_t, c_void_p)  # guestfwd to a chardev


class SlirpCb(Structure):
    _fields_ = [
        ("send_packet", SEND_PACKET),
        ("guest_error", GUEST_ERROR),
        ("clock_get_ns", CLOCK_GET_NS),
        ("timer_new", TIMER_NEW),
        ("timer_free", TIMER_FREE),
        ("timer_mod", TIMER_MOD),
        ("register_poll_fd", REGISTER_POLL_FD),
        ("unregister_poll_fd", REGISTER_POLL_FD),
        ("notify", NOTIFY),
        # read only when SlirpConfig.version >= 4; NULL means "not used"
        ("init_completed", c_void_p),
        ("timer_new_opaque", c_void_p),
    ]


class SlirpUnavailable(OSError):
    """libslirp0 is not installed."""


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """libslirp, loaded once, with the signatures pemu uses."""
    global _lib
    if _lib is not None:
        return _lib
    name = ctypes.util.find_library("slirp") or "libslirp.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        raise SlirpUnavailable(f"-netdev user needs libslirp (Debian package libslirp0): "
                               f"{e}") from None
    lib.slirp_version_string.restype = c_char_p
    lib.slirp_version_string.argtypes = []
    lib.slirp_new.restype = c_void_p
    lib.slirp_new.argtypes = [POINTER(SlirpConfig), POINTER(SlirpCb), c_void_p]
    lib.slirp_cleanup.restype = None
    lib.slirp_cleanup.argtypes = [c_void_p]
    lib.slirp_pollfds_fill.restype = None
    lib.slirp_pollfds_fill.argtypes = [c_void_p, POINTER(c_uint32), ADD_POLL, c_void_p]
    lib.slirp_pollfds_poll.restype = None
    lib.slirp_pollfds_poll.argtypes = [c_void_p, c_int, GET_REVENTS, c_void_p]
    lib.slirp_input.restype = None
    lib.slirp_input.argtypes = [c_void_p, ctypes.c_char_p, c_int]
    lib.slirp_add_hostfwd.restype = c_int
    lib.slirp_add_hostfwd.argtypes = [c_void_p, c_int, InAddr, c_int, InAddr, c_int]
    lib.slirp_remove_hostfwd.restype = c_int
    lib.slirp_remove_hostfwd.argtypes = [c_void_p, c_int, InAddr, c_int]
    lib.slirp_add_exec.restype = c_int  # guestfwd=...-cmd:COMMAND
    lib.slirp_add_exec.argtypes = [c_void_p, c_char_p, POINTER(InAddr), c_int]
    lib.slirp_add_guestfwd.restype = c_int  # guestfwd=...-CHARDEV
    lib.slirp_add_guestfwd.argtypes = [c_void_p, WRITE_CB, c_void_p, POINTER(InAddr), c_int]
    lib.slirp_socket_recv.restype = None
    lib.slirp_socket_recv.argtypes = [c_void_p, InAddr, c_int, ctypes.c_char_p, c_int]
    lib.slirp_socket_can_recv.restype = c_size_t
    lib.slirp_socket_can_recv.argtypes = [c_void_p, InAddr, c_int]
    lib.slirp_connection_info.restype = c_void_p  # a g_malloc'd string
    lib.slirp_connection_info.argtypes = [c_void_p]
    _lib = lib
    return lib


def version() -> str:
    return library().slirp_version_string().decode()
