"""``-object tls-creds-x509`` and ``-object tls-creds-psk`` as ``ssl.SSLContext``s.

x509 (QEMU's file names in ``dir``):
  ca-cert.pem        the CA that signs the peer's certificate (needed to verify a peer)
  ca-crl.pem         optional revocation list
  server-cert.pem, server-key.pem   endpoint=server
  client-cert.pem, client-key.pem   endpoint=client (optional: a server may not ask)
  dh-params.pem      optional
  ``passwordid=SECRET`` decrypts an encrypted private key.
``verify-peer=on`` (the default) makes a server demand a client certificate signed by
the CA, and a client check the server's.

psk: ``dir`` holds ``keys.psk``, lines ``username:hexkey``; a client sends ``username``
(default ``qemu``), a server accepts any user in the file.  Python's ssl module has no
PSK interface before 3.13, so ``pemu.crypto.psk`` installs OpenSSL's callbacks itself.
"""

from __future__ import annotations

import os
import ssl

from pemu.crypto import psk
from pemu.crypto.objects import TLS_TYPES, register_object_type
from pemu.crypto.secret import SecretError
from pemu.qemuopts.keyval import parse_bool

X509, PSK = TLS_TYPES
SERVER, CLIENT = "server", "client"
_COMMON_KEYS = {"qom-type", "id", "dir", "endpoint", "verify-peer", "priority",
                "sanity-check", "loaded"}


class TLSCreds:
    """What both kinds share: an endpoint and a ready SSLContext."""

    kind = ""

    def __init__(self, opts: dict[str, str], extra_keys: set[str]) -> None:
        self.id = opts["id"]
        unknown = set(opts) - _COMMON_KEYS - extra_keys
        if unknown:
            raise SecretError(f"{self.kind} '{self.id}': Property '{sorted(unknown)[0]}' "
                              "not found")
        self.dir = opts.get("dir")
        if not self.dir:
            raise SecretError(f"{self.kind} '{self.id}': parameter 'dir' is missing")
        self.endpoint = opts.get("endpoint", CLIENT)
        if self.endpoint not in (SERVER, CLIENT):
            raise SecretError(f"{self.kind} '{self.id}': endpoint must be server or client")
        self.verify_peer = parse_bool(opts.get("verify-peer", "on"), "verify-peer")
        self.context: ssl.SSLContext

    @property
    def server(self) -> bool:
        return self.endpoint == SERVER

    def file(self, name: str, required: bool = True) -> str | None:
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            if required:
                raise SecretError(f"{self.kind} '{self.id}': cannot find '{path}'")
            return None
        return path

    def new_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if self.server
                             else ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # No TLS 1.3 session tickets: they arrive after the handshake, and asyncio
        # clients (qemu.qmp) that stop reading before they close then never finish
        # their TLS shutdown.  A monitor has no use for session resumption anyway.
        if self.server:
            ctx.num_tickets = 0
        return ctx

    def failed(self, e: ssl.SSLError | OSError) -> SecretError:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        return SecretError(f"{self.kind} '{self.id}': unusable credentials: {reason}")


class X509Creds(TLSCreds):
    kind = X509

    def __init__(self, store, opts: dict[str, str]) -> None:
        super().__init__(opts, {"passwordid"})
        password = store.secret(opts["passwordid"]) if "passwordid" in opts else None
        ctx = self.new_context()
        role = "server" if self.server else "client"
        try:
            cert = self.file(f"{role}-cert.pem", required=self.server)
            if cert is not None:
                ctx.load_cert_chain(cert, self.file(f"{role}-key.pem"), password=password)
            if self.verify_peer:
                ctx.load_verify_locations(self.file("ca-cert.pem"))
                ctx.verify_mode = ssl.CERT_REQUIRED
                crl = self.file("ca-crl.pem", required=False)
                if crl is not None:
                    ctx.load_verify_locations(crl)
                    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
            else:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            dh = self.file("dh-params.pem", required=False)
            if dh is not None and self.server:
                ctx.load_dh_params(dh)
        except (ssl.SSLError, OSError) as e:
            raise self.failed(e) from None
        self.context = ctx


class PSKCreds(TLSCreds):
    kind = PSK

    def __init__(self, store, opts: dict[str, str]) -> None:
        super().__init__(opts, {"username"})
        self.username = opts.get("username", "qemu")
        if self.server and "username" in opts:
            raise SecretError(f"{PSK} '{self.id}': username is for endpoint=client")
        self.keys = psk.read_keys_file(self.file("keys.psk"), self.kind, self.id)
        if not self.server and self.username not in self.keys:
            raise SecretError(f"{PSK} '{self.id}': no key for user '{self.username}' "
                              "in keys.psk")
        ctx = self.new_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the key authenticates both ends
        # OpenSSL's PSK callbacks are TLS 1.2's; under 1.3 they only work in a
        # compatibility mode that Python's defaults break (illegal parameter alert)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.context = ctx
        psk.install(ctx, self)


register_object_type(X509, X509Creds)
register_object_type(PSK, PSKCreds)
