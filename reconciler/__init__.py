"""reconciler: declarative cron jobs and daemons for a fleet, one controller per host."""

__version__ = "0.1.0"
