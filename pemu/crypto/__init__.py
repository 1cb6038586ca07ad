"""User-creatable security objects (``-object secret``, ``tls-creds-*``, ``authz-*``).

Every password, key and TLS credential pemu uses is one of these objects, looked up by
id in one store (``pemu.crypto.objects``), so a manager hands them to pemu in one
way only and a feature cannot grow its own private password option.
"""

from pemu.crypto import authz, tls_creds  # noqa: E402,F401 - they register their object types
