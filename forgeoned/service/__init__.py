"""The application layer. Imports only ``core`` and ``errors`` and talks to the world through
the ports in :mod:`forgeoned.core.ports` and :mod:`forgeoned.core.swap_ports`.

- what runs: reconciler (plugins.d and the active set into swaps), what_runs (the rule for
  which candidate runs), swaps (a swap and what follows from it), restarts (backoff and
  quarantine), refusals, rejections, plugin index (verified plugins.d files), artifact
  source (and its verifier), active set (the durable record and kept copies), retirer (stop
  and unload off the loop);
- running: plugin table, plugin host (the call path) on plugin slot (the part the swapper
  drives), call gate, ticks;
- the control API's use cases: operations, install, plugin status, evidence, reviews,
  staging, sources (OCI);
- audit: audit batch (the start's events written together), chain watch.
"""
