"""QEMU's option syntax (QemuOpts/keyval) and the parsed system configuration.

A leaf package: it imports nothing of pemu, so every layer may use it (``OptionError``
for a one-line error naming the option, ``parse_keyval`` for ``a=1,b=2`` values,
``SystemConfig`` for what the command line asked for); ``pemu/cli`` sits on top.
"""
