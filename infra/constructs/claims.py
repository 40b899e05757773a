"""Claims: the claims table and the claim verification state machine (Standard).

The definition lives in `infra/statemachines/claims.asl.json` with readable state
names; it is loaded as is and its `${...}` placeholders are filled with the ARNs of
the step functions, so the local cloud runs the very same file.

It is inlined (`DefinitionString` + `DefinitionSubstitutions`) rather than loaded with
`DefinitionBody.from_file`, which would upload it as an S3 asset
(`DefinitionS3Location`): inline, cfn-lint validates the ASL and the local cloud
needs no asset store to read it.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from functions.core.tables import CLAIMS
from infra.constructs.platform import LOG_RETENTION, Platform
from infra.constructs.resources import acknowledge, ignore_redundant_depends_on

DEFINITION = Path(__file__).resolve().parent.parent / "statemachines" / "claims.asl.json"


class Claims(Construct):
    def __init__(self, scope: Construct, id: str, *, platform: Platform) -> None:
        super().__init__(scope, id)
        self.table = platform.add_table(self, CLAIMS)
        # Placeholder name -> Lambda ARN for the ASL file; the verification steps
        # (claims issue) add theirs here and grant the state machine invoke.
        substitutions: dict[str, str] = {}
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(DEFINITION.read_text()),
            # CloudFormation rejects an empty DefinitionSubstitutions map.
            definition_substitutions=substitutions or None,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=logs.LogGroup(self, "Logs", retention=LOG_RETENTION),
                level=sfn.LogLevel.ALL,
                # Inputs and outputs stay in the execution history (`rebates claims
                # trace` reads it); the logs carry the flow without customer data.
                include_execution_data=False,
            ),
        )
        ignore_redundant_depends_on(self.state_machine)
        acknowledge(
            self.state_machine.role.node.find_child("DefaultPolicy"),
            "AwsSolutions-IAM5[Resource::*]",
            "CloudWatch Logs vended delivery (logs:CreateLogDelivery and friends) and X-Ray "
            "write actions do not support resource-level permissions.",
        )
