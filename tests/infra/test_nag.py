"""cdk-nag (AwsSolutions): no finding is left unfixed or unacknowledged, and every
acknowledgment sits on the resource it is about, with a reason."""

from __future__ import annotations

from aws_cdk import Validations
from cdk_nag import AwsSolutionsChecks

from tests.infra.conftest import Synth


def _acknowledgments(synth: Synth) -> dict[str, dict[str, str]]:
    """Construct path -> {rule id: reason} for every acknowledgment in the app."""
    found: dict[str, dict[str, str]] = {}
    for construct in synth.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                found.setdefault(construct.node.path, {}).update(entry.data)
    return found


def test_aws_solutions_reports_no_unacknowledged_finding(synth: Synth) -> None:
    report = AwsSolutionsChecks().validate_scope(synth.stack)
    findings = [
        f"{violation.rule_name} at {[r.construct_path for r in violation.violating_resources]}"
        for violation in report.violations
    ]
    assert findings == []
    assert report.success


def test_acknowledgments_are_narrow_and_explained(synth: Synth) -> None:
    acknowledgments = _acknowledgments(synth)
    assert acknowledgments, "expected the documented acknowledgments"
    for path, rules in acknowledgments.items():
        # Not on the app or the stack: each one names the resource it excuses.
        assert "/" in path, f"stack-wide acknowledgment at {path}: {sorted(rules)}"
        for rule, reason in rules.items():
            assert len(reason) > 40, f"{path} {rule}: give a specific reason"
            if "IAM5" in rule:
                # One finding at a time (Resource::... or Action::...), never the rule.
                assert "[" in rule, f"{path}: acknowledge IAM5 per finding, not {rule}"
