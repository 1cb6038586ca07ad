"""``-object tls-creds-x509,id=ID,dir=DIR,endpoint=server[,verify-peer=on|off]`` as an
``ssl.SSLContext``.

The directory layout is QEMU's: ``ca-cert.pem`` (the CA that signs client
certificates), ``server-cert.pem`` and ``server-key.pem``.  With ``verify-peer=on``
(QEMU's default) a client must present a certificate signed by that CA, which is what
makes a TCP monitor safe to expose: the monitor can read and write all guest memory.
"""

from __future__ import annotations

import os
import ssl

from pemu.qemuopts.keyval import OptionError, parse_bool


class TLSCreds:
    def __init__(self, opts: dict[str, str]) -> None:
        self.id = opts.get("id", "")
        self.dir = opts.get("dir")
        if not self.dir:
            raise OptionError(f"tls-creds-x509 '{self.id}': parameter 'dir' is missing")
        endpoint = opts.get("endpoint", "client")
        if endpoint != "server":
            raise OptionError(f"tls-creds-x509 '{self.id}': a monitor needs "
                              "endpoint=server credentials")
        self.verify_peer = parse_bool(opts.get("verify-peer", "on"), "verify-peer")
        self.context = self._make_context()

    def _file(self, name: str) -> str:
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            raise OptionError(f"tls-creds-x509 '{self.id}': cannot find '{path}'")
        return path

    def _make_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # No TLS 1.3 session tickets: they arrive after the handshake, and asyncio
        # clients (qemu.qmp) that stop reading before they close then never finish
        # their TLS shutdown.  A monitor has no use for session resumption anyway.
        ctx.num_tickets = 0
        try:
            ctx.load_cert_chain(self._file("server-cert.pem"), self._file("server-key.pem"))
            if self.verify_peer:
                ctx.load_verify_locations(self._file("ca-cert.pem"))
                ctx.verify_mode = ssl.CERT_REQUIRED
        except ssl.SSLError as e:
            raise OptionError(f"tls-creds-x509 '{self.id}': unusable credentials: "
                              f"{e.reason or e}") from None
        return ctx


def load_tls_objects(objects: list[dict[str, str]]) -> dict[str, TLSCreds]:
    """The tls-creds-x509 objects among the -object options, by id."""
    out: dict[str, TLSCreds] = {}
    for opts in objects:
        if opts.get("qom-type") == "tls-creds-x509":
            creds = TLSCreds(opts)
            out[creds.id] = creds
    return out
