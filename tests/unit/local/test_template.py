"""Intrinsic resolution and deployment order of CloudFormation templates (no AWS)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from infra.local.template import (
    Resolver,
    TemplateError,
    check_intrinsics,
    deployment_order,
    inactive_resources,
    load_template,
)

REGION = "ap-northeast-1"


def _template(**resources: dict[str, Any]) -> dict[str, Any]:
    return {"Resources": resources}


def _queue(**extra: Any) -> dict[str, Any]:
    return {"Type": "AWS::SQS::Queue", "Properties": {}, **extra}


@pytest.fixture
def resolver() -> Resolver:
    template = {
        "Parameters": {
            "BootstrapVersion": {
                "Type": "AWS::SSM::Parameter::Value<String>",
                "Default": "/cdk-bootstrap/hnb659fds/version",
            },
            "Stage": {"Type": "String", "Default": "prod"},
        },
        "Conditions": {
            "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
            "IsTokyo": {"Fn::Equals": [{"Ref": "AWS::Region"}, REGION]},
            "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
            "ProdInTokyo": {"Fn::And": [{"Condition": "IsProd"}, {"Condition": "IsTokyo"}]},
            "ProdOrElsewhere": {"Fn::Or": [{"Condition": "NotProd"}, {"Condition": "IsProd"}]},
        },
        "Mappings": {"Sizes": {"prod": {"Memory": 512}}},
        "Resources": {"Queue": _queue(), "Table": {"Type": "AWS::DynamoDB::Table"}},
    }
    resolver = Resolver(template, region=REGION)
    resolver.record(
        "Queue",
        "https://sqs/q",
        {"Arn": "arn:aws:sqs:ap-northeast-1:123456789012:q", "QueueName": "q"},
    )
    return resolver


# Ref and pseudo parameters --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("AWS::Region", REGION),
        ("AWS::AccountId", "123456789012"),
        ("AWS::Partition", "aws"),
        ("AWS::URLSuffix", "amazonaws.com"),
        ("AWS::StackName", "Rebates"),
        ("BootstrapVersion", "/cdk-bootstrap/hnb659fds/version"),
        ("Queue", "https://sqs/q"),
    ],
)
def test_ref_resolves_pseudo_parameters_parameters_and_resources(
    resolver: Resolver, name: str, expected: str
) -> None:
    assert resolver.resolve({"Ref": name}) == expected


def test_stack_id_is_a_cloudformation_stack_arn(resolver: Resolver) -> None:
    stack_id = resolver.resolve({"Ref": "AWS::StackId"})
    assert stack_id.startswith("arn:aws:cloudformation:ap-northeast-1:123456789012:stack/Rebates/")


def test_parameters_can_be_overridden() -> None:
    template = {"Parameters": {"Stage": {"Type": "String", "Default": "prod"}}, "Resources": {}}
    assert Resolver(template, parameters={"Stage": "dev"}).resolve({"Ref": "Stage"}) == "dev"


def test_ref_to_a_resource_not_deployed_yet_names_it(resolver: Resolver) -> None:
    with pytest.raises(TemplateError, match=r"Owner: Table is not deployed"):
        resolver.resolve({"Ref": "Table"}, resource="Owner")


def test_ref_to_an_unknown_name_is_an_error(resolver: Resolver) -> None:
    with pytest.raises(TemplateError, match=r"Owner: Ref to unknown name 'Nope'"):
        resolver.resolve({"Ref": "Nope"}, resource="Owner")


# GetAtt ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", [["Queue", "Arn"], "Queue.Arn"])
def test_get_att_list_and_string_forms(resolver: Resolver, form: Any) -> None:
    assert resolver.resolve({"Fn::GetAtt": form}) == "arn:aws:sqs:ap-northeast-1:123456789012:q"


def test_get_att_of_an_unknown_attribute_lists_the_known_ones(resolver: Resolver) -> None:
    with pytest.raises(TemplateError, match=r"Owner: Fn::GetAtt Queue.Nope.*Arn, QueueName"):
        resolver.resolve({"Fn::GetAtt": ["Queue", "Nope"]}, resource="Owner")


# Join, Select, Split, Sub ---------------------------------------------------------------


def test_join_select_and_split(resolver: Resolver) -> None:
    arn = {"Fn::GetAtt": ["Queue", "Arn"]}
    assert resolver.resolve({"Fn::Select": [5, {"Fn::Split": [":", arn]}]}) == "q"
    joined = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", "b", "/*"]]}
    assert resolver.resolve(joined) == "arn:aws:s3:::b/*"
    assert resolver.resolve({"Fn::Select": ["1", ["a", "b"]]}) == "b"


def test_select_outside_the_list_is_an_error(resolver: Resolver) -> None:
    with pytest.raises(TemplateError, match="index 2"):
        resolver.resolve({"Fn::Select": [2, ["a", "b"]]})


def test_sub_string_form(resolver: Resolver) -> None:
    text = "${Queue}|${Queue.QueueName}|${AWS::Region}|${!Literal}|${AWS::AccountId}"
    assert resolver.resolve({"Fn::Sub": text}) == (
        "https://sqs/q|q|ap-northeast-1|${Literal}|123456789012"
    )


def test_sub_with_variables_which_may_be_intrinsics(resolver: Resolver) -> None:
    sub = {
        "Fn::Sub": [
            "${Name}-${Arn}-${Stage}",
            {"Name": "fixed", "Arn": {"Fn::GetAtt": "Queue.Arn"}},
        ]
    }
    assert resolver.resolve(sub) == "fixed-arn:aws:sqs:ap-northeast-1:123456789012:q-prod"


def test_base64_get_azs_and_find_in_map(resolver: Resolver) -> None:
    assert base64.b64decode(resolver.resolve({"Fn::Base64": {"Ref": "Stage"}})) == b"prod"
    assert resolver.resolve({"Fn::GetAZs": ""}) == [f"{REGION}a", f"{REGION}c", f"{REGION}d"]
    assert resolver.resolve({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Memory"]}) == 512


# Conditions and NoValue -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("IsProd", True),
        ("IsTokyo", True),
        ("NotProd", False),
        ("ProdInTokyo", True),
        ("ProdOrElsewhere", True),
    ],
)
def test_conditions(resolver: Resolver, condition: str, expected: bool) -> None:
    assert resolver.condition(condition) is expected


def test_if_picks_the_branch_of_its_condition(resolver: Resolver) -> None:
    assert resolver.resolve({"Fn::If": ["IsProd", "big", "small"]}) == "big"
    assert resolver.resolve({"Fn::If": ["NotProd", "big", {"Ref": "Stage"}]}) == "prod"


def test_no_value_removes_the_property_or_list_element(resolver: Resolver) -> None:
    value = {
        "Kept": 1,
        "Dropped": {"Ref": "AWS::NoValue"},
        "DroppedIf": {"Fn::If": ["NotProd", "x", {"Ref": "AWS::NoValue"}]},
        "List": ["a", {"Ref": "AWS::NoValue"}, {"Fn::If": ["IsProd", "b", "c"]}],
    }
    assert resolver.resolve(value) == {"Kept": 1, "List": ["a", "b"]}


def test_unknown_condition_is_an_error(resolver: Resolver) -> None:
    with pytest.raises(TemplateError, match="unknown condition 'Nope'"):
        resolver.resolve({"Fn::If": ["Nope", 1, 2]})


# Errors for what cannot be resolved ------------------------------------------------------


def test_unknown_intrinsic_names_itself_and_the_resource(resolver: Resolver) -> None:
    with pytest.raises(TemplateError, match=r"Owner: intrinsic Fn::Cidr is not supported"):
        resolver.resolve({"Nested": [{"Fn::Cidr": ["10.0.0.0/16", 4, 8]}]}, resource="Owner")


def test_import_value_is_a_clear_error(resolver: Resolver) -> None:
    with pytest.raises(TemplateError, match=r"Owner: Fn::ImportValue needs another stack"):
        resolver.resolve({"Fn::ImportValue": "SharedVpc"}, resource="Owner")


def test_malformed_intrinsics_are_template_errors(resolver: Resolver) -> None:
    with pytest.raises(TemplateError, match=r"Owner: malformed Fn::Join"):
        resolver.resolve({"Fn::Join": ["only-a-delimiter"]}, resource="Owner")


def test_check_intrinsics_finds_unsupported_ones_before_deploying() -> None:
    template = _template(
        Fine=_queue(Properties={"QueueName": {"Fn::Sub": "${AWS::StackName}-q"}}),
        Bad=_queue(Properties={"Tags": [{"Key": "k", "Value": {"Fn::Length": [1, 2]}}]}),
    )
    with pytest.raises(TemplateError, match=r"Bad: intrinsic Fn::Length"):
        check_intrinsics(template)
    template["Resources"].pop("Bad")
    template["Outputs"] = {"Out": {"Value": {"Fn::ImportValue": "x"}}}
    with pytest.raises(TemplateError, match=r"output Out: Fn::ImportValue"):
        check_intrinsics(template)


# Deployment order -----------------------------------------------------------------------


def test_order_follows_ref_get_att_sub_and_depends_on() -> None:
    template = _template(
        Rule=_queue(Properties={"Target": {"Fn::GetAtt": ["Target", "Arn"]}}),
        Late=_queue(DependsOn="Rule"),
        Target=_queue(Properties={"Name": {"Fn::Sub": "${Bus}-x"}}),
        Bus=_queue(),
        Alone=_queue(),
    )
    # Ties keep the template's order: Bus comes before Alone, both ready at the start.
    assert deployment_order(template) == ["Bus", "Target", "Rule", "Late", "Alone"]


def test_sub_variables_and_literals_are_not_dependencies() -> None:
    template = _template(
        A=_queue(Properties={"Name": {"Fn::Sub": ["${B}-${!C}", {"B": "fixed"}]}}),
    )
    assert deployment_order(template) == ["A"]


def test_a_cycle_is_an_error_naming_the_ids() -> None:
    template = _template(
        A=_queue(Properties={"P": {"Ref": "B"}}),
        B=_queue(Properties={"P": {"Fn::Sub": "${C.Arn}"}}),
        C=_queue(DependsOn=["A"]),
        D=_queue(),
    )
    with pytest.raises(
        TemplateError, match=r"dependency cycle between resources: A -> B -> C -> A"
    ):
        deployment_order(template)


def test_a_reference_to_a_missing_resource_is_an_error() -> None:
    template = _template(A=_queue(Properties={"P": {"Fn::GetAtt": ["Ghost", "Arn"]}}))
    with pytest.raises(TemplateError, match=r"A: refers to 'Ghost'"):
        deployment_order(template)


def test_resources_whose_condition_is_false_are_skipped_and_recorded() -> None:
    template = {
        "Conditions": {"Never": {"Fn::Equals": ["a", "b"]}},
        "Resources": {
            "Off": _queue(Condition="Never"),
            "On": _queue(Properties={"P": {"Fn::If": ["Never", {"Ref": "Off"}, "none"]}}),
        },
    }
    assert inactive_resources(template) == {"Off": "Never"}
    assert deployment_order(template) == ["On"]


# Loading --------------------------------------------------------------------------------


def test_load_template(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_template(A=_queue())))
    assert load_template(path)["Resources"]["A"]["Type"] == "AWS::SQS::Queue"
    path.write_text("[]")
    with pytest.raises(TemplateError, match="not a CloudFormation template"):
        load_template(path)
    with pytest.raises(TemplateError, match="cannot read"):
        load_template(tmp_path / "missing.json")
