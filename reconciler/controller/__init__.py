"""The controller: the loop that wires spec, schedule, hosts, reconcile and supervisor."""

from reconciler.controller.loop import Controller, Options

__all__ = ["Controller", "Options"]
