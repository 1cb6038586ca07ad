"""A 9P2000.L file server for virtio-9p shares (``-virtfs``, ``-fsdev`` + ``virtio-9p-*``).

Layers, each unit-testable without a guest:
  protocol.py  message numbers and the little-endian codec (strings, qids)
  beneath.py   opening a path below the share root without ever leaving it
  local.py     the ``local`` fsdev driver: host files, the three security models
  server.py    the 9P2000.L operations on a fid table: bytes in, bytes out
The virtio transport (pemu/hw/virtio/virtio_9p.py) only moves messages between the
virtqueue and ``Server.handle``.
"""
