"""The monitor's network commands, on the machine's ``Network`` (pemu/net/network.py):
QMP ``set_link``, ``netdev_add``, ``netdev_del``; HMP ``info network``,
``hostfwd_add``, ``hostfwd_remove`` (and the HMP spellings of the QMP ones)."""

from __future__ import annotations

from pemu.monitor.errors import DEVICE_NOT_FOUND, QMPError
from pemu.net.network import Network, NetworkError
from pemu.net.user import HostfwdError
from pemu.qemuopts.keyval import OptionError

# QMP netdev_add members pemu takes besides type and id (those of -netdev user); a
# list-valued option (hostfwd, dnssearch) is QAPI's [String]: [{"str": "..."}]
NETDEV_ADD_MEMBERS = {
    "*net": "str", "*host": "str", "*dhcpstart": "str", "*dns": "str",
    "*hostname": "str", "*domainname": "str", "*restrict": "bool", "*ipv4": "bool",
    "*ipv6": "bool", "*ipv6-net": "str", "*tftp": "str", "*tftp-server-name": "str",
    "*bootfile": "str", "*hostfwd": "any", "*dnssearch": "any",
    # stream / dgram (a SocketAddress is an object: {"type": "unix", "path": ...})
    "*server": "bool", "*addr": "any", "*local": "any", "*remote": "any", "*reconnect": "any",
    # socket (legacy)
    "*listen": "str", "*connect": "str", "*mcast": "str", "*udp": "str", "*localaddr": "str",
    "*fd": "str",
    # tap, hubport
    "*ifname": "str", "*script": "str", "*downscript": "str", "*vnet_hdr": "bool",
    "*queues": "any", "*hubid": "any", "*netdev": "str", "*guestfwd": "any",
}


def network_of(machine) -> Network:
    network = getattr(machine, "network", None)
    if network is None:
        raise QMPError("this machine has no network")
    return network


def set_link(machine, name: str, up: bool) -> None:
    try:
        network_of(machine).set_link(name, up)
    except NetworkError as e:
        raise QMPError(str(e), DEVICE_NOT_FOUND) from None


def query_rx_filter(machine, name: str | None) -> list[dict[str, object]]:
    network = network_of(machine)
    nics = network.nics
    if name is not None:
        if name not in nics:
            raise QMPError(f"net client({name}) isn't a NIC", DEVICE_NOT_FOUND)
        nics = {name: nics[name]}
    return [nic.rx_filter() for nic in nics.values() if hasattr(nic, "rx_filter")]


def _value_items(key: str, value: object) -> list[tuple[str, str]]:
    if isinstance(value, bool):
        return [(key, "on" if value else "off")]
    if isinstance(value, int):
        return [(key, str(value))]
    if isinstance(value, dict):  # an object member: addr.type=..., addr.path=...
        return [item for sub, v in value.items() for item in _value_items(f"{key}.{sub}", v)]
    if isinstance(value, list):
        out = []
        for entry in value:
            text = entry.get("str") if isinstance(entry, dict) else entry
            if not isinstance(text, str):
                raise QMPError(f"Parameter '{key}' expects a list of {{'str': ...}}")
            out.append((key, text))
        return out
    if not isinstance(value, str):
        raise QMPError(f"Parameter '{key}' expects a string")
    return [(key, value)]


def netdev_add(machine, type: str, id: str, options: dict[str, object]) -> None:
    """QMP's members become the ``-netdev`` text, so both go through the same checks."""
    items = [("id", id)]
    for key, value in options.items():
        items += _value_items(key, value)
    netdev_add_text(machine, ",".join([type] + [f"{k}={v.replace(',', ',,')}"
                                                for k, v in items]))


def netdev_add_text(machine, text: str) -> None:
    """HMP ``netdev_add`` (and QMP's, once spelled out): the ``-netdev`` syntax."""
    network = network_of(machine)
    try:
        network.add_text(text)
    except (OptionError, NetworkError) as e:
        # the message without the "prog: -netdev TEXT: " prefix of the command line
        raise QMPError(str(e).split(": ", 2)[-1]) from None


def netdev_del(machine, id: str) -> None:
    try:
        network_of(machine).remove(id)
    except NetworkError as e:
        raise QMPError(str(e), DEVICE_NOT_FOUND) from None


# -- HMP -----------------------------------------------------------------------------
def info_network(machine) -> str:
    network = getattr(machine, "network", None)
    text = network.info() if network is not None else ""
    return text + "\n" if text else ""


def _user_and_rule(machine, arg: str):
    words = arg.split()
    if len(words) not in (1, 2):
        raise QMPError("expected [netdev_id] rule")
    netdev_id = words[0] if len(words) == 2 else None
    try:
        return network_of(machine).user_backend(netdev_id), words[-1]
    except NetworkError as e:
        raise QMPError(str(e)) from None


def hostfwd_add(machine, arg: str) -> str:
    backend, rule = _user_and_rule(machine, arg)
    try:
        backend.add_hostfwd(rule)
    except (HostfwdError, OSError) as e:
        return f"{e}\n"
    return ""


def hostfwd_remove(machine, arg: str) -> str:
    backend, rule = _user_and_rule(machine, arg)
    try:
        backend.remove_hostfwd(rule)
    except (HostfwdError, OSError) as e:
        return f"{e}\n"
    return f"host forwarding rule for {rule} removed\n"
