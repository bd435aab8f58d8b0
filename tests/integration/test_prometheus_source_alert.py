"""The ForgeoneSourceFailing rule, evaluated by promtool's rule unit tests (real PromQL)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from prom_kit import RULES

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")

# Minute by minute: "ok" succeeds throughout (failing_since 0); "broken" started failing at
# t=600s and never recovered; "flaky" failed at t=600s and recovered at t=1800s.
CASES = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'forgeone_source_failing_since_timestamp_seconds{{source="ok"}}'
        values: '0x120'
      - series: 'forgeone_source_failing_since_timestamp_seconds{{source="broken"}}'
        values: '0x10 600x110'
      - series: 'forgeone_source_failing_since_timestamp_seconds{{source="flaky"}}'
        values: '0x10 600x20 0x90'
    alert_rule_test:
      - eval_time: 50m
        alertname: ForgeoneSourceFailing
        exp_alerts: []
      - eval_time: 71m
        alertname: ForgeoneSourceFailing
        exp_alerts:
          - exp_labels: {{severity: warning, source: broken}}
            exp_annotations:
              summary: "forgeoned cannot sync OCI source broken"
              description: "{description}"
"""


def test_a_source_failing_longer_than_the_bound_fires_and_a_recovered_one_does_not(
    tmp_path: Path,
) -> None:
    description = (
        "Every sync of source broken has failed for more than an hour "
        "(forgeone_source_sync_failures_total says why). Running plugins are untouched: "
        "they keep the version delivered last. See `forgeonectl sources` and the "
        "source.failed audit events; `forgeonectl pull broken` retries now."
    )
    spec = tmp_path / "source_alert_test.yml"
    spec.write_text(CASES.format(rules=RULES, description=description))
    run = subprocess.run(
        ["promtool", "test", "rules", str(spec)], check=False, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    check = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], check=False, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
