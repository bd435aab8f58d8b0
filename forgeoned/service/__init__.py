"""The application layer: reconciler, plugin host and call gate, plugin index, active set,
rejections, tick scheduler, chain watch, audit batch. Imports only ``core`` and ``errors``
and talks to the world through the ports in :mod:`forgeoned.core.ports`."""
