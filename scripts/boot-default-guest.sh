#!/usr/bin/env bash
# Set up pemu and boot the default RISC-V Linux guest (OpenSBI + Linux + busybox
# initramfs) on the virt board to an interactive shell.  Ctrl-A x quits.
#
# Guest images come from $PEMU_GUESTS, else ../shared/guests beside this checkout.
# Extra arguments are passed to pemu-system-riscv64 (e.g. -accel tcg,backend=python).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/install-deps.sh"

guests="${PEMU_GUESTS:-$here/../shared/guests}"
if [ ! -f "$guests/riscv64/Image" ] || [ ! -f "$guests/riscv64/initramfs.cpio.gz" ]; then
    echo "boot-default-guest: no guest images in $guests/riscv64." >&2
    echo "Build them with the guests' build.sh (./build.sh riscv64-kernel riscv64-initramfs)" >&2
    echo "and point PEMU_GUESTS at its output folder." >&2
    exit 1
fi

exec pemu-system-riscv64 -M virt -m 256M -smp 1 -nographic \
    -kernel "$guests/riscv64/Image" -initrd "$guests/riscv64/initramfs.cpio.gz" \
    -append "console=ttyS0" "$@"
