"""``forgeoned-fetch --config PATH --once``: sync every OCI source once, without the daemon.

The falcoctl pattern's init container: in Kubernetes the pod's plugins.d is an emptyDir, so
before the daemon starts, this fills it from the registry with the very code the daemon's
follower uses (:class:`~forgeoned.adapters.oci.fetch.OciFetcher`: the same checks, the same
signature verification against the same trust store, the same atomic rename). Exit 0 when
every source synced (or already held its artifact), 1 when any failed (the kubelet retries
an init container with backoff), 78 for a bad configuration or trust store. Then the daemon
starts with its plugins in place and keeps following the sources itself. Audit events are
the daemon's: here each outcome is one line on stderr, and the daemon records what it
installs from plugins.d when it starts (a daemon that cannot write its audit log does not
start, so nothing fetched here runs unrecorded). While the daemon runs, its own follower
syncs, and holds every sync while its audit log cannot be written; ``--once`` is for an
init container or a unit ordered before the daemon, not for a running daemon's plugins.d.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from forgeoned.adapters.crypto.keys import load_trust_dir
from forgeoned.adapters.files.atomic import ensure_dir
from forgeoned.adapters.files.attestations import AttestationFiles
from forgeoned.adapters.files.strict_modes import check_trusted_inputs, judge
from forgeoned.adapters.oci.fetch import OciFetcher
from forgeoned.core.clock import SystemClock
from forgeoned.core.sources import SyncOutcome
from forgeoned.daemon.check import EX_CONFIG
from forgeoned.daemon.config_file import load_config
from forgeoned.daemon.host_services import credentials_dir
from forgeoned.errors import ConfigError, ForgeonedError, InsecurePathError, SourceError
from forgeoned.service.artifact_source import ArtifactVerifier
from forgeoned.service.staging import Attestations

log = logging.getLogger("forgeoned.fetch")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="forgeoned-fetch", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the daemon's configuration file")
    parser.add_argument("--once", action="store_true", required=True,
                        help="sync each source once and exit (the only mode)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        config = load_config(Path(args.config))
        verdict = judge(
            check_trusted_inputs(
                config.path,
                config.trust_dir,
                credentials_dir(config),
                plugin_config_dir=config.plugin_config_dir,
            ),
            development=config.development,
        )
        if verdict is not None and verdict[0]:
            raise InsecurePathError(verdict[1])
        trust = load_trust_dir(config.trust_dir, config.trust)
        ensure_dir(config.plugins_dir)
    except (ConfigError, ForgeonedError) as exc:
        print(f"forgeoned-fetch: {exc}", file=sys.stderr)
        return EX_CONFIG
    clock = SystemClock()
    # the daemon's verifier, require_staging included (the attestation a source carries is
    # checked with the module and written beside it)
    attest = Attestations(config.staging, trust, AttestationFiles(config.plugins_dir))
    verifier = ArtifactVerifier(trust, config.mode, config.limits, clock, attest)
    failed = 0
    for source in config.sources:
        fetcher = OciFetcher(source, config.plugins_dir, credentials_dir(config),
                             lambda data, att: verifier(data, None, att), clock)  # fmt: skip
        try:
            result = fetcher.sync()
        except SourceError as exc:
            failed += 1
            print(f"forgeoned-fetch: {source.name}: {exc.code}: {exc}", file=sys.stderr)
            continue
        finally:
            fetcher.close()
        what = "unchanged" if result.outcome is SyncOutcome.UNCHANGED else "synced"
        print(f"{source.name}: {what} {result.plugin} {result.version} {result.digest}",
              file=sys.stderr)  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
