"""docker-covenant: stop Docker containers that break the host's policy."""

__version__ = "1.0.0"
