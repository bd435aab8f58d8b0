"""The application layer: reconciler, plugin operations, plugin table, plugin host and call
gate, plugin index, active set, artifact source, rejections, tick scheduler, chain watch,
audit batch. Imports only ``core`` and ``errors`` and talks to the world through the ports in
:mod:`forgeoned.core.ports` and :mod:`forgeoned.core.swap_ports`."""
