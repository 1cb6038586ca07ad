"""``pemu-ga SOCKET COMMAND ...``: talk to the guest agent without writing JSON.

  pemu-ga /tmp/ga.sock ping                   exit 0 when the agent answers
  pemu-ga /tmp/ga.sock info | osinfo | interfaces     the agent's answer, as JSON
  pemu-ga /tmp/ga.sock exec -- uname -a       the command's output; its exit status
  pemu-ga /tmp/ga.sock cat /etc/hostname      a guest file to stdout
  pemu-ga /tmp/ga.sock write /tmp/f < data    stdin into a guest file
  pemu-ga /tmp/ga.sock shutdown [powerdown|halt|reboot]
  pemu-ga /tmp/ga.sock '{"execute": "guest-get-time"}'    any command, raw

SOCKET is the host side of the chardev of the port named org.qemu.guest_agent.0
(``-chardev socket,path=SOCKET,server=on,wait=off,id=ga -device
virtserialport,chardev=ga,name=org.qemu.guest_agent.0``), or HOST:PORT.
"""

from __future__ import annotations

import argparse
import json
import sys

from pemu.guest_agent.client import GuestAgent, GuestAgentError

PROG = "pemu-ga"
COMMANDS = {"info": GuestAgent.info, "osinfo": GuestAgent.osinfo,
            "interfaces": GuestAgent.network_interfaces}


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _raw(agent: GuestAgent, text: str) -> int:
    try:
        request = json.loads(text)
    except json.JSONDecodeError as e:
        raise GuestAgentError(f"not JSON: {e}") from None
    if not isinstance(request, dict) or not isinstance(request.get("execute"), str):
        raise GuestAgentError('raw JSON must be an object with "execute"')
    reply = request["execute"] not in ("guest-shutdown", "guest-suspend-disk",
                                       "guest-suspend-ram", "guest-suspend-hybrid")
    _print_json(agent.execute(request["execute"], request.get("arguments"), reply=reply))
    return 0


def run(agent: GuestAgent, command: str, args: list[str]) -> int:
    if command.lstrip().startswith("{"):
        return _raw(agent, command)
    if command == "ping":
        agent.ping()
        return 0
    if command in COMMANDS:
        _print_json(COMMANDS[command](agent))
        return 0
    if command == "exec":
        argv = args[1:] if args[:1] == ["--"] else args
        if not argv:
            raise GuestAgentError("exec needs a command: exec -- PROGRAM [ARG...]")
        result = agent.exec(argv, timeout=None)
        sys.stdout.buffer.write(result.stdout)
        sys.stdout.flush()
        sys.stderr.buffer.write(result.stderr)
        return result.status
    if command == "cat" and len(args) == 1:
        sys.stdout.buffer.write(agent.file_read(args[0]))
        return 0
    if command == "write" and len(args) == 1:
        agent.file_write(args[0], sys.stdin.buffer.read())
        return 0
    if command == "shutdown" and len(args) <= 1:
        agent.shutdown(args[0] if args else "powerdown")
        return 0
    raise GuestAgentError(f"unknown command or arguments: {' '.join([command, *args])} "
                          f"(see {PROG} --help)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("socket", help="the guest agent chardev's socket (PATH or HOST:PORT)")
    parser.add_argument("command", help="ping, info, osinfo, interfaces, exec, cat, write, "
                        "shutdown, or a raw JSON request")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's arguments")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for each answer (default 30)")
    opts = parser.parse_args(argv)
    try:
        with GuestAgent(opts.socket, opts.timeout) as agent:
            return run(agent, opts.command, opts.args)
    except (GuestAgentError, OSError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
