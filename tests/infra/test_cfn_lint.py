"""cfn-lint on the synthesized template: no errors and no warnings.

The few checks CDK's own output trips are ignored in the template itself, per
resource and with a reason (see `ignore_redundant_depends_on`), so the command line
here is the plain one anyone runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.infra.conftest import Synth

# The console script installed beside this interpreter (the project's virtualenv).
CFN_LINT = Path(sys.executable).with_name("cfn-lint")


def test_template_passes_cfn_lint(synth: Synth) -> None:
    result = subprocess.run(
        [str(CFN_LINT), "--format", "parseable", "-t", str(synth.template_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout == "" and result.returncode == 0, result.stdout + result.stderr
