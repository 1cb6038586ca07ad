"""virtio-9p (``virtio-9p-device``, ``virtio-9p-pci``): a host directory shared with the
guest over 9P2000.L (``mount -t 9p -o trans=virtio TAG /mnt``).

One queue; each chain carries one T-message in its readable buffers and room for the
R-message in its writable ones (Linux puts the payload of big reads and writes in
further descriptors of the same chain: the codec sees one contiguous message either
way).  Config space: ``tag_len u16`` + the mount tag (feature VIRTIO_9P_MOUNT_TAG).

The file server (pemu/fs9p) runs on the device's own I/O thread, requests in order,
so a slow host file system never stalls a vCPU; a reset drops the fids, on that same
thread, after what came before it.
"""

from __future__ import annotations

import struct

from pemu.block.aio import AioContext
from pemu.fs9p.fsdev import find_fsdev
from pemu.fs9p.local import LocalFS
from pemu.fs9p.protocol import HEADER
from pemu.fs9p.server import Server
from pemu.hw.virtio.device import VirtioDevice, bit
from pemu.hw.virtio.virtqueue import VirtqElement, VirtQueue
from pemu.qemuopts.keyval import OptionError
from pemu.qom.registry import DEVICE, Property, TypeInfo, register

VIRTIO_ID_9P = 9
VIRTIO_9P_MOUNT_TAG = 0
MAX_TAG_LEN = 254  # QEMU's: 255 with the NUL it never sends


class Virtio9P(VirtioDevice):
    """``Virtio9P(server, tag)``: serves ``server``'s share under mount tag ``tag``."""

    device_id = VIRTIO_ID_9P
    num_queues = 1
    queue_size = 128  # QEMU's MAX_REQ
    type_name = "virtio-9p-device"

    def __init__(self, server: Server, tag: str, id: str | None = None,
                 export_path: str = "") -> None:
        super().__init__(id)
        self.tag = tag.encode()
        if not 0 < len(self.tag) <= MAX_TAG_LEN:
            raise ValueError(f"mount tag '{tag}' ({len(self.tag)} bytes) is longer than "
                             f"maximum ({MAX_TAG_LEN} bytes)")
        self.server = server
        self.export_path = export_path
        self._aio = AioContext(name="pemu-9p-io")

    def device_features(self) -> int:
        return bit(VIRTIO_9P_MOUNT_TAG)

    def config_bytes(self) -> bytes:
        return struct.pack("<H", len(self.tag)) + self.tag

    def queue_notified(self, vq: VirtQueue) -> None:
        while (elem := vq.pop()) is not None:
            self._aio.submit(lambda e=elem: self._serve(e),
                             self.completion_for(vq, elem))

    def _serve(self, elem: VirtqElement) -> int:
        """One request, on the I/O thread: returns the bytes written for the driver."""
        header = elem.read_out(0, HEADER.size)
        if len(header) < HEADER.size:
            return 0  # not even a tag to answer: hand the buffers back empty
        size = HEADER.unpack(header)[0]
        # never more than msize from the guest, whatever length its descriptors claim
        request = elem.read_out(0, min(size, elem.out_len, self.server.max_msize))
        return elem.write_in(0, self.server.handle(request, elem.in_len))

    def device_reset(self) -> None:
        super().device_reset()
        self._aio.submit(self.server.close)  # after the requests already queued

    @property
    def blocks_migration(self) -> bool:
        """While the guest has the share mounted (any fid), its state cannot move: the
        fids name host files the destination may not have (QEMU blocks it too)."""
        return bool(self.server.fids)

    @property
    def migration_blocker(self) -> str:
        """QEMU's message for the blocker above."""
        return (f"Migration is disabled when VirtFS export path '{self.export_path}' is "
                f"mounted in the guest using mount_tag '{self.tag.decode()}'")

    def drain(self) -> None:
        """Wait for every queued request (tests, migration)."""
        self._aio.drain()

    def close(self) -> None:
        self._aio.close()
        self.server.close()
        self.server.fs.close()


def _create(ctx, opts: dict[str, str], name: str) -> Virtio9P:  # noqa: ANN001 - DeviceContext
    driver = opts.get("driver", "virtio-9p-device")
    where = f"{ctx.prog}: -device {driver}"
    fsdev_id = opts.get("fsdev")
    spec = find_fsdev(ctx.cfg.fsdevs, fsdev_id)
    if spec is None:
        raise OptionError(f"{where}: 9pfs device couldn't find fsdev with the id = "
                          f"{fsdev_id or 'NULL'}")
    tag = opts.get("mount_tag")
    if not tag:
        raise OptionError(f"{where}: fsdev with id {fsdev_id} needs mount_tag arguments")
    try:
        fs = LocalFS(spec.path, spec.security_model, spec.readonly, spec.fmode, spec.dmode)
    except OSError as e:
        raise OptionError(f"{where}: cannot initialize fsdev '{spec.id}': failed to open "
                          f"'{spec.path}': {e.strerror}") from None
    try:
        device = Virtio9P(Server(fs, sync_writes=spec.writeout_immediate), tag, id=name,
                          export_path=spec.path)
    except ValueError as e:
        fs.close()
        raise OptionError(f"{where}: {e}") from None
    ctx.closers.append(device)
    return device


register(TypeInfo("virtio-9p-device", DEVICE, "Virtio 9p share (9P2000.L)",
                  properties=(Property("fsdev", "str", description="the -fsdev ID"),
                              Property("mount_tag", "str",
                                       description="the tag the guest mounts")),
                  bus="virtio-bus", factory=_create))
