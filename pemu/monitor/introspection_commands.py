"""QMP commands a management tool asks before it starts a guest (libvirt's probe):
``query-command-line-options``, ``query-tpm-models``, ``query-tpm-types`` and
``query-uuid``.

Every answer comes from a declaration that the code acting on it also reads: the
option keys from pemu/qemuopts/parameters.py (the parsers refuse undeclared keys),
the TPM lists are empty because pemu has no TPM.
"""

from __future__ import annotations

from pemu.monitor.errors import QMPError
from pemu.qemuopts.parameters import BOOLEAN, NUMBER, SIZE, STRING, declared


def register(schema) -> None:
    s, command = schema, schema.command
    s.enum("CommandLineParameterType", [STRING, BOOLEAN, NUMBER, SIZE])
    s.struct("CommandLineParameterInfo", {"name": "str", "type": "CommandLineParameterType",
                                          "*help": "str", "*default": "str"})
    s.struct("CommandLineOptionInfo", {"option": "str",
                                       "parameters": "[CommandLineParameterInfo]"})
    s.enum("TpmModel", ["tpm-tis", "tpm-crb", "tpm-spapr"])
    s.enum("TpmType", ["passthrough", "emulator"])
    s.struct("UuidInfo", {"UUID": "str"})

    @command("query-command-line-options", {"*option": "str"}, "[CommandLineOptionInfo]")
    def query_command_line_options(ctx, option: str | None = None) -> list:
        groups = declared()
        if option is not None:
            if option not in groups:
                raise QMPError(f"Invalid parameter '{option}'")
            groups = {option: groups[option]}
        return [{"option": group,
                 "parameters": [{"name": n, "type": t} for n, t in params.items()]}
                for group, params in groups.items()]

    @command("query-tpm-models", returns="[TpmModel]")
    def query_tpm_models(ctx) -> list:
        return []  # pemu emulates no TPM

    @command("query-tpm-types", returns="[TpmType]")
    def query_tpm_types(ctx) -> list:
        return []

    @command("query-uuid", returns="UuidInfo")
    def query_uuid(ctx) -> dict:
        cfg = getattr(ctx.machine, "cfg", None)
        uuid = getattr(cfg, "uuid", None) or "00000000-0000-0000-0000-000000000000"
        return {"UUID": uuid}
