#!/usr/bin/env bash
# Install everything pemu and its tests need on a fresh Debian machine (run as root, or
# with sudo available): the Debian packages of the real peers the tests talk to, and
# pemu itself with its Python dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    qemu-user qemu-utils qemu-system-misc qemu-system-x86 opensbi u-boot-qemu
    gdb-multiarch device-tree-compiler binutils-riscv64-linux-gnu gcc-riscv64-linux-gnu
    libc6-dev-riscv64-cross binutils e2fsprogs cpio gzip
    clang-14  # tests/linux_user/test_vectorized.py: gcc 12 does not vectorize for RISC-V
    libslirp0 openssh-client sshpass
    passt tcpdump iperf3  # networking: passt backend test, filter-dump pcap check, bench/
    libseccomp2  # -sandbox: bound with ctypes (pemu/sandbox/libseccomp.py)
    openssl  # tests/hardening/test_tls.py: openssl s_client as the TLS client
    binutils-aarch64-linux-gnu  # tests/aarch64: A64 test programs, against qemu-aarch64
    qemu-system-arm  # tests/aarch64/system: bare-metal programs, against qemu-system-aarch64
    mmdebstrap arch-test qemu-user-static  # tests/linux_user/test_debian_chroot.py: the root
    linux-libc-dev-riscv64-cross  # tests/system/test_nested_kvm.py: <linux/kvm.h> (riscv64)
    # tests/aarch64/test_a64_dynamic.py: dynamic arm64 programs built with the cross gcc,
    # run against Debian's own arm64 glibc (multiarch, below) and the cross one
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross libc6:arm64
)

# libc6:arm64 needs the arm64 architecture in dpkg (multiarch); apt-get update below
# then fetches its package lists, as the package counts as missing.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    if [ "$(id -u)" -eq 0 ]; then dpkg --add-architecture arm64; else sudo dpkg --add-architecture arm64; fi
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# libvirt's QEMU driver and virsh (tests/libvirt): 6 packages, 3.8 MB to download and
# 11 MiB installed without recommends (with them, 35 packages and 15 MB: lvm2, swtpm,
# Xen libraries).  The libvirt-qemu user the driver insists on is what
# libvirt-daemon-system's postinst would create.
LIBVIRT_PACKAGES=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
libvirt_missing=()
for p in "${LIBVIRT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || libvirt_missing+=("$p")
done
if [ ${#libvirt_missing[@]} -gt 0 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${libvirt_missing[@]}" >/dev/null
fi
getent passwd libvirt-qemu >/dev/null || $SUDO useradd --system --user-group \
    --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu

PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check -e '.[test]'
# pemu starts a Python process per guest program, binfmt entry and test run: compile its
# bytecode once here, because an editable install writes none, and hosts (our development
# machines included) that set PYTHONDONTWRITEBYTECODE would recompile every module at each start
# (0.4-0.8 s).  Python still checks each .pyc against its source, so edits stay live.
python3 -m compileall -q -j 0 pemu >/dev/null
