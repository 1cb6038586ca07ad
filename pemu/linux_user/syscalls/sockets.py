"""Sockets: sockaddr and option buffers have the same layout on host and guest."""

from __future__ import annotations

import struct

from .hostcall import fd_arg, host, in_ptr, opt_in_ptr, opt_out_ptr, out_ptr
from .registry import syscall


def _addr_out(t, addr: int, addrlen_ptr: int) -> tuple[int, int]:
    """Host pointers for an (addr, socklen_t *addrlen) output pair."""
    if not addrlen_ptr:
        return 0, 0
    (length,) = struct.unpack("<I", t.process.mem.read(addrlen_ptr, 4))
    return opt_out_ptr(t, addr, length), out_ptr(t, addrlen_ptr, 4)


@syscall("socket")
def sys_socket(t, domain, type_, protocol):
    return host("socket", domain, type_, protocol)


@syscall("socketpair")
def sys_socketpair(t, domain, type_, protocol, sv):
    return host("socketpair", domain, type_, protocol, out_ptr(t, sv, 8))


@syscall("bind")
def sys_bind(t, fd, addr, addrlen):
    return host("bind", fd_arg(fd), in_ptr(t, addr, addrlen), addrlen)


@syscall("connect")
def sys_connect(t, fd, addr, addrlen):
    return host("connect", fd_arg(fd), in_ptr(t, addr, addrlen), addrlen)


@syscall("listen")
def sys_listen(t, fd, backlog):
    return host("listen", fd_arg(fd), backlog)


@syscall("accept4")
def sys_accept4(t, fd, addr, addrlen, flags):
    a, al = _addr_out(t, addr, addrlen)
    return host("accept4", fd_arg(fd), a, al, flags)


@syscall("accept")
def sys_accept(t, fd, addr, addrlen):
    a, al = _addr_out(t, addr, addrlen)
    return host("accept", fd_arg(fd), a, al)


@syscall("getsockname")
def sys_getsockname(t, fd, addr, addrlen):
    a, al = _addr_out(t, addr, addrlen)
    return host("getsockname", fd_arg(fd), a, al)


@syscall("getpeername")
def sys_getpeername(t, fd, addr, addrlen):
    a, al = _addr_out(t, addr, addrlen)
    return host("getpeername", fd_arg(fd), a, al)


@syscall("sendto")
def sys_sendto(t, fd, buf, length, flags, addr, addrlen):
    return host("sendto", fd_arg(fd), in_ptr(t, buf, length), length, flags,
                opt_in_ptr(t, addr, addrlen), addrlen)


@syscall("recvfrom")
def sys_recvfrom(t, fd, buf, length, flags, addr, addrlen):
    a, al = _addr_out(t, addr, addrlen)
    return host("recvfrom", fd_arg(fd), out_ptr(t, buf, length), length, flags, a, al)


@syscall("setsockopt")
def sys_setsockopt(t, fd, level, name, value, length):
    return host("setsockopt", fd_arg(fd), level, name, opt_in_ptr(t, value, length), length)


@syscall("getsockopt")
def sys_getsockopt(t, fd, level, name, value, length_ptr):
    v, vl = _addr_out(t, value, length_ptr)
    return host("getsockopt", fd_arg(fd), level, name, v, vl)


@syscall("shutdown")
def sys_shutdown(t, fd, how):
    return host("shutdown", fd_arg(fd), how)
