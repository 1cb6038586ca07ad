"""Networking: netdev backends (``-netdev``), the link between a backend and a NIC, and
the ``-netdev``/``-nic`` options.

  client.py    NetClient: one end of a link (a NIC or a backend), its frame queue
  backend.py   how a backend declares itself in the type registry (kind NETDEV)
  options.py   -netdev / -nic parsing and checks, -netdev help
  network.py   the machine's netdevs and NICs (created from the config, the monitor's view)
  user.py      -netdev user: libslirp (slirp_ffi.py binds it with ctypes)
  checksum.py  the Internet checksum, for NICs that complete checksums for the guest
"""
