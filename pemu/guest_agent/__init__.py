"""A client for the QEMU guest agent (qemu-ga) that runs inside a guest and talks over
a virtio-serial port: ``pemu-ga SOCKET exec -- uname -a`` (main.py) or, from Python,
``GuestAgent(path).exec(["uname", "-a"])`` (client.py)."""

from pemu.guest_agent.client import ExecResult, GuestAgent, GuestAgentError

__all__ = ["ExecResult", "GuestAgent", "GuestAgentError"]
