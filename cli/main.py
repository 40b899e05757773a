"""`rebates`: the command line of marketers, operators and developers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = PROJECT_ROOT / "events"


def _contracts(args: argparse.Namespace) -> int:
    # Imported here so `rebates --help` stays fast and needs no handler code.
    from cli.contracts import check_event_schemas, write_event_schemas
    from cli.openapi import check_openapi, write_openapi

    openapi_path = EVENTS_DIR / "openapi.json"
    if args.action == "generate":
        written = [*write_event_schemas(EVENTS_DIR), write_openapi(openapi_path)]
        print(f"wrote {len(written)} files under {EVENTS_DIR}")
        return 0
    problems = [*check_event_schemas(EVENTS_DIR), *check_openapi(openapi_path)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("run `make contracts` to regenerate", file=sys.stderr)
        return 1
    print("contracts are up to date")
    return 0


def _campaigns(args: argparse.Namespace) -> int:
    from cli.campaigns import run_validate

    result: int = run_validate(Path(args.file))
    return result


def _local(args: argparse.Namespace) -> int:
    import cli.local
    from cli.local import LocalCloudUnavailable, control, parse_duration
    from cli.target import TargetUnavailable, announce, local_target, requested_target

    try:
        if requested_target(getattr(args, "target", None)) == "aws":
            raise TargetUnavailable(
                "`rebates local` drives the local cloud only (not --target aws)"
            )
        # Read at call time so tests (and tools) can point it at another outputs file.
        target = local_target(cli.local.OUTPUTS)
        announce(target)
        if args.action == "fire":
            result = control("POST", f"fire/{args.name}", api_url=target.api_url)
        elif args.advance is not None:
            body = {"advanceSeconds": parse_duration(args.advance)}
            result = control("POST", "clock", body, api_url=target.api_url)
        elif args.offset is not None:
            body = {"offsetSeconds": parse_duration(args.offset)}
            result = control("POST", "clock", body, api_url=target.api_url)
        else:
            result = control("GET", "clock", api_url=target.api_url)
    except (LocalCloudUnavailable, TargetUnavailable, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _wallet(args: argparse.Namespace) -> int:
    from cli.target import TargetUnavailable, from_args
    from cli.wallet import run_audit

    try:
        return run_audit(args.customer_id, from_args(args))
    except TargetUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _notifications(args: argparse.Namespace) -> int:
    from cli.notifications import run_sent
    from cli.target import TargetUnavailable, from_args

    try:
        return run_sent(from_args(args), customer_id=args.customer, as_json=args.json)
    except TargetUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _claims(args: argparse.Namespace) -> int:
    from cli.claims import decision_problem, run_decision, run_review, run_trace
    from cli.target import TargetUnavailable, from_args

    if args.action == "review":
        problem = decision_problem(
            approve=args.approve, reject=args.reject, reason=args.reason, reviewer=args.reviewer
        )
        if problem:
            print(f"rebates claims review: error: {problem}", file=sys.stderr)
            return 2
    try:
        target = from_args(args)
    except TargetUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.action == "trace":
        return run_trace(args.claim_id, target)
    if args.approve is not None or args.reject is not None:
        return run_decision(
            target,
            args.approve if args.approve is not None else args.reject,
            decision="approve" if args.approve is not None else "reject",
            reason=args.reason,
            reviewer=args.reviewer,
            as_json=args.json,
        )
    return run_review(target, as_json=args.json)


def _report(args: argparse.Namespace) -> int:
    from cli.report import run_report
    from cli.target import TargetUnavailable, from_args

    try:
        target = from_args(args)
    except TargetUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return run_report(
        target,
        args.campaign_id,
        first=args.first,
        last=args.last,
        html=Path(args.html) if args.html else None,
        engine=args.engine,
    )


def _outputs(args: argparse.Namespace) -> int:
    from cli.target import TargetUnavailable, from_args

    try:
        target = from_args(args)
        if args.name == "ApiKey":
            # In AWS the key is never an output (DESIGN): read it from API Gateway.
            print(target.api_key())
        elif args.name is not None:
            print(target.output(args.name))
        else:
            print(json.dumps(dict(target.outputs), indent=2, sort_keys=True))
    except TargetUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _target_options(*, top_level: bool) -> argparse.ArgumentParser:
    """`--target`, accepted before or after the subcommand.

    Below the top level the default is SUPPRESS, so a subcommand that is not given
    the flag keeps the top-level value instead of overwriting it with None.
    """
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--target",
        choices=["local", "aws"],
        default=None if top_level else argparse.SUPPRESS,
        help="the local cloud (.local/outputs.json) or the stack deployed in AWS "
        "(default: $REBATES_TARGET, else local when it answers, else AWS)",
    )
    return options


def _add_report(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    target: argparse.ArgumentParser,
) -> None:
    """`rebates report`, kept out of `build_parser` (long enough without it)."""
    report = commands.add_parser(
        "report",
        parents=[target],
        help="a campaign's KPIs, funnel and attribution (counters and archive SQL); "
        "charts with --html",
    )
    report.add_argument("campaign_id", metavar="CAMPAIGN_ID", help="e.g. spring-trail-2027")
    report.add_argument(
        "--from",
        dest="first",
        type=date.fromisoformat,
        metavar="DATE",
        help="first campaign-local day, YYYY-MM-DD (default: the campaign's first)",
    )
    report.add_argument(
        "--to",
        dest="last",
        type=date.fromisoformat,
        metavar="DATE",
        help="last campaign-local day, included (default: today, or the campaign's last)",
    )
    report.add_argument("--html", metavar="FILE", help="also write the report with charts")
    report.add_argument(
        "--engine",
        choices=["duckdb", "athena"],
        help="what runs the archive SQL (default: DuckDB over a copy locally, Athena in AWS)",
    )
    report.set_defaults(run=_report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rebates",
        description="Rebates: e-commerce reward campaigns, from the command line.",
        parents=[_target_options(top_level=True)],
    )
    target = _target_options(top_level=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    contracts = commands.add_parser(
        "contracts", help="generate or check the committed event schemas and OpenAPI document"
    )
    contracts.add_argument("action", choices=["generate", "check"])
    contracts.set_defaults(run=_contracts)

    campaigns = commands.add_parser("campaigns", help="work with campaign files")
    campaign_actions = campaigns.add_subparsers(dest="action", metavar="ACTION", required=True)
    validate = campaign_actions.add_parser(
        "validate", help="check a campaign file (YAML or JSON) and print each error with its path"
    )
    validate.add_argument("file", metavar="FILE", help="the campaign file, e.g. spring.yaml")
    campaigns.set_defaults(run=_campaigns)

    wallet = commands.add_parser("wallet", parents=[target], help="check a customer's wallet")
    wallet_actions = wallet.add_subparsers(dest="action", metavar="ACTION", required=True)
    audit = wallet_actions.add_parser(
        "audit",
        parents=[target],
        help="check that entries, lots and balances agree; exit 1 with the differences",
    )
    audit.add_argument("customer_id", metavar="CUSTOMER_ID", help="the storefront's customer id")
    wallet.set_defaults(run=_wallet)

    claims = commands.add_parser(
        "claims", parents=[target], help="follow rebate claims and decide those in review"
    )
    claim_actions = claims.add_subparsers(dest="action", metavar="ACTION", required=True)
    trace = claim_actions.add_parser(
        "trace", parents=[target], help="the claim's verification (its execution) as a timeline"
    )
    trace.add_argument("claim_id", metavar="CLAIM_ID", help="e.g. clm_01J...")
    review = claim_actions.add_parser(
        "review",
        parents=[target],
        help="list the claims waiting for review (oldest first), or decide one",
    )
    decide = review.add_mutually_exclusive_group()
    decide.add_argument("--approve", metavar="CLAIM_ID", help="approve the claim")
    decide.add_argument("--reject", metavar="CLAIM_ID", help="reject the claim (needs --reason)")
    review.add_argument("--reason", metavar="R", help="why, kept with the decision")
    review.add_argument(
        "--reviewer", metavar="NAME", help="who decides (default: your AWS caller identity ARN)"
    )
    review.add_argument("--json", action="store_true", help="machine-readable output")
    claims.set_defaults(run=_claims)

    notifications = commands.add_parser(
        "notifications", parents=[target], help="what the stack told customers, and how"
    )
    notification_actions = notifications.add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    sent = notification_actions.add_parser(
        "sent",
        parents=[target],
        help="messages by template, locale and channel (sent, failed, pending, SMS segments)",
    )
    sent.add_argument("--customer", metavar="CUSTOMER_ID", help="only this customer's messages")
    sent.add_argument("--json", action="store_true", help="machine-readable output")
    notifications.set_defaults(run=_notifications)

    _add_report(commands, target)

    outputs = commands.add_parser(
        "outputs",
        parents=[target],
        help="print the stack outputs of the target (one value with NAME; ApiKey for the key)",
    )
    outputs.add_argument("name", nargs="?", metavar="NAME", help="e.g. ApiUrl, ApiKey")
    outputs.set_defaults(run=_outputs)

    local = commands.add_parser(
        "local", parents=[target], help="drive the running local cloud (make run)"
    )
    local_actions = local.add_subparsers(dest="action", metavar="ACTION", required=True)
    fire = local_actions.add_parser(
        "fire", parents=[target], help="fire a scheduled rule now (moto fires none)"
    )
    fire.add_argument("name", help="the rule's name or logical id")
    clock = local_actions.add_parser(
        "clock",
        parents=[target],
        help="show or move the clock the handlers see (e.g. --advance 3d)",
    )
    moves = clock.add_mutually_exclusive_group()
    moves.add_argument("--advance", metavar="DURATION", help="move it forward, e.g. 3d, 2h")
    moves.add_argument("--offset", metavar="DURATION", help="set the offset from now, e.g. 0s")
    local.set_defaults(run=_local)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
