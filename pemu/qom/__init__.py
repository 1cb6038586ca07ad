"""Types that declare themselves: see registry.py."""
