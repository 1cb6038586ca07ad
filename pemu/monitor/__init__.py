"""QMP and HMP monitors: ``create_monitors(cfg, machine, chardevs)`` builds them all."""
