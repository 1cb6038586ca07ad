"""sendmsg, recvmsg, sendmmsg, recvmmsg: message headers rebuilt with host pointers.

struct msghdr, struct iovec, struct mmsghdr and the control messages (cmsghdr, the
int descriptors of SCM_RIGHTS, struct ucred of SCM_CREDENTIALS) have one layout on
every LP64 Linux, so guest and host agree on them byte for byte; descriptors and
pids are the host's own in pemu (no translation table).  What differs is only the
address space: the pointers inside a header (name, iovec array, each iovec's base,
control buffer) are guest addresses.  Each call therefore builds host copies of the
headers and iovec arrays that point at the same guest bytes (checked first, as
hostcall's pointers are), lets the host kernel fill the guest's buffers directly, and
copies the lengths and flags it returns back into the guest's headers.
"""

from __future__ import annotations

import ctypes
import errno
import struct

from .hostcall import fd_arg, host, in_ptr, opt_in_ptr, out_ptr
from .registry import syscall

MSGHDR = struct.Struct("<QI4xQQQQi4x")  # name, namelen, iov, iovlen, control, controllen, flags
MMSGHDR_SIZE = MSGHDR.size + 8  # + unsigned int msg_len, padded
IOVEC = struct.Struct("<QQ")
SOCKADDR_STORAGE_SIZE = 128
UIO_MAXIOV = 1024  # the kernel's limit on iovecs per message, and on mmsghdrs per call
_RETURNED = struct.Struct("<I4xQQQQi4x")  # namelen .. flags: what recvmsg writes back


class _HostMessages:
    """Host copies of ``count`` guest headers (msghdr, or mmsghdr with ``stride``)."""

    def __init__(self, t, addr: int, count: int, stride: int, receiving: bool) -> None:
        self.t, self.addr, self.count, self.stride = t, addr, count, stride
        mem = t.process.mem
        self.addr = addr = mem.untagged(addr)
        self.headers = ctypes.create_string_buffer(count * stride)
        self.iovecs = []  # kept alive for the call
        for i in range(count):
            guest = mem.read(addr + i * stride, stride)
            self.headers[i * stride:(i + 1) * stride] = \
                self._host_header(guest, receiving) + guest[MSGHDR.size:]

    def _host_header(self, guest: bytes, receiving: bool) -> bytes:
        name, namelen, iov, iovlen, control, controllen, flags = \
            MSGHDR.unpack_from(guest)
        if iovlen > UIO_MAXIOV:
            raise OSError(errno.EMSGSIZE, "too many iovecs")
        buffer = out_ptr if receiving else in_ptr
        host_iov = ctypes.create_string_buffer(max(iovlen, 1) * IOVEC.size)
        mem = self.t.process.mem
        entries = IOVEC.iter_unpack(mem.read(mem.untagged(iov), iovlen * IOVEC.size)) \
            if iovlen else ()
        for i, (base, length) in enumerate(entries):
            if length >> 63:
                raise OSError(errno.EINVAL, "negative iovec length")
            host_iov[i * IOVEC.size:(i + 1) * IOVEC.size] = \
                IOVEC.pack(buffer(self.t, base, length) if length else 0, length)
        self.iovecs.append(host_iov)
        if namelen >> 31:
            raise OSError(errno.EINVAL, "negative msg_namelen")
        namelen = min(namelen, SOCKADDR_STORAGE_SIZE)  # the kernel clamps it so
        name_ptr = buffer(self.t, name, namelen) if name and namelen else 0
        control_ptr = buffer(self.t, control, controllen) if control and controllen else 0
        return MSGHDR.pack(name_ptr, namelen, ctypes.addressof(host_iov) if iovlen else 0,
                           iovlen, control_ptr, controllen, flags)

    @property
    def address(self) -> int:
        return ctypes.addressof(self.headers)

    def copy_back(self, done: int, received: bool) -> None:
        """The first ``done`` headers: what the host wrote into its copies (received:
        the name and control lengths and the flags; mmsghdr: msg_len)."""
        mem = self.t.process.mem
        for i in range(done):
            offset = i * self.stride
            guest = self.addr + offset
            if received:
                returned = bytes(self.headers[offset + 8:offset + MSGHDR.size])
                namelen, _, _, _, controllen, flags = _RETURNED.unpack(returned)
                mem.write(guest + 8, struct.pack("<I", namelen))
                mem.write(guest + 40, struct.pack("<Qi", controllen, flags))
            if self.stride == MMSGHDR_SIZE:
                mem.write(guest + MSGHDR.size, bytes(self.headers[offset + MSGHDR.size:
                                                                  offset + MSGHDR.size + 4]))


@syscall("sendmsg")
def sys_sendmsg(t, fd, msg, flags):
    headers = _HostMessages(t, msg, 1, MSGHDR.size, receiving=False)
    return host("sendmsg", fd_arg(fd), headers.address, flags)


@syscall("recvmsg")
def sys_recvmsg(t, fd, msg, flags):
    headers = _HostMessages(t, msg, 1, MSGHDR.size, receiving=True)
    ret = host("recvmsg", fd_arg(fd), headers.address, flags)
    if ret >= 0:
        headers.copy_back(1, received=True)
    return ret


@syscall("sendmmsg")
def sys_sendmmsg(t, fd, vec, vlen, flags):
    count = min(vlen & 0xFFFFFFFF, UIO_MAXIOV)
    headers = _HostMessages(t, vec, count, MMSGHDR_SIZE, receiving=False)
    ret = host("sendmmsg", fd_arg(fd), headers.address, count, flags)
    if ret > 0:
        headers.copy_back(ret, received=False)
    return ret


@syscall("recvmmsg")
def sys_recvmmsg(t, fd, vec, vlen, flags, timeout):
    count = min(vlen & 0xFFFFFFFF, UIO_MAXIOV)
    headers = _HostMessages(t, vec, count, MMSGHDR_SIZE, receiving=True)
    # struct timespec is the same 16 bytes on both sides; the kernel updates it
    ret = host("recvmmsg", fd_arg(fd), headers.address, count, flags,
               opt_in_ptr(t, timeout, 16) and out_ptr(t, timeout, 16))
    if ret > 0:
        headers.copy_back(ret, received=True)
    return ret
