"""The /dev/kvm handle: opening it with clear errors, capabilities, supported CPUID/MSRs."""

from __future__ import annotations

import errno
import os

from pemu.accel.kvm import abi
from pemu.accel.kvm.errors import KVMError, KVMUnavailable
from pemu.accel.kvm.ioctl import ioctl_raw, kvm_ioctl

DEFAULT_DEVICE = "/dev/kvm"


class KVMSystem:
    """An open /dev/kvm.  Raises KVMUnavailable with the reason when it cannot be used."""

    def __init__(self, path: str = DEFAULT_DEVICE) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise KVMUnavailable(
                f"{path} does not exist: this host has no KVM (load kvm_intel or kvm_amd, "
                "or run on a machine with virtualization enabled), use -accel tcg") from None
        except PermissionError:
            raise KVMUnavailable(
                f"{path}: permission denied: add this user to the 'kvm' group or run as a "
                "user who may open it") from None
        except OSError as e:
            if e.errno in (errno.ENXIO, errno.ENODEV):
                raise KVMUnavailable(f"{path}: no KVM module behind the device node "
                                     f"({e.strerror})") from None
            raise KVMUnavailable(f"{path}: cannot open: {e.strerror}") from None
        version, err = ioctl_raw(self.fd, abi.KVM_GET_API_VERSION)
        if version != abi.KVM_API_VERSION:
            os.close(self.fd)
            why = os.strerror(err) if version < 0 else f"API version {version}"
            raise KVMUnavailable(f"{path}: not a usable KVM ({why}; pemu needs API version "
                                 f"{abi.KVM_API_VERSION})")
        self.vcpu_mmap_size = kvm_ioctl(self.fd, abi.KVM_GET_VCPU_MMAP_SIZE, 0,
                                        "GET_VCPU_MMAP_SIZE")
        self._cpuid: list[abi.KvmCpuidEntry2] | None = None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def check_extension(self, cap: int, fd: int | None = None) -> int:
        """KVM_CHECK_EXTENSION on /dev/kvm (or a VM fd); 0 when unsupported."""
        ret, _ = ioctl_raw(self.fd if fd is None else fd, abi.KVM_CHECK_EXTENSION, cap)
        return max(ret, 0)

    def require(self, caps: dict[int, str]) -> None:
        missing = [name for cap, name in caps.items() if not self.check_extension(cap)]
        if missing:
            raise KVMUnavailable(f"{self.path}: this KVM lacks {', '.join(missing)}")

    def supported_cpuid(self) -> list[abi.KvmCpuidEntry2]:
        """KVM_GET_SUPPORTED_CPUID, growing the buffer until it fits (E2BIG)."""
        if self._cpuid is None:
            n = 64
            while True:
                buf = abi.cpuid2_struct(n)()
                buf.nent = n
                ret, err = ioctl_raw(self.fd, abi.KVM_GET_SUPPORTED_CPUID, buf)
                if ret >= 0:
                    break
                if err != errno.E2BIG or n >= 4096:
                    raise KVMError(f"KVM GET_SUPPORTED_CPUID failed: {os.strerror(err)}")
                n *= 2
            self._cpuid = [abi.KvmCpuidEntry2.from_buffer_copy(buf.entries[i])
                           for i in range(buf.nent)]
        return [abi.KvmCpuidEntry2.from_buffer_copy(e) for e in self._cpuid]

    def msr_index_list(self) -> list[int]:
        n = 256
        while True:
            buf = abi.msr_list_struct(n)()
            buf.nmsrs = n
            ret, err = ioctl_raw(self.fd, abi.KVM_GET_MSR_INDEX_LIST, buf)
            if ret >= 0:
                return list(buf.indices[: buf.nmsrs])
            if err != errno.E2BIG or n >= 8192:
                raise KVMError(f"KVM GET_MSR_INDEX_LIST failed: {os.strerror(err)}")
            n *= 4

    def __enter__(self) -> KVMSystem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def kvm_status(path: str = DEFAULT_DEVICE) -> str | None:
    """None when KVM can be opened, else the reason (for tests and -accel help)."""
    try:
        KVMSystem(path).close()
    except KVMError as e:
        return str(e)
    return None

