"""Glue databases and tables."""

from __future__ import annotations

from typing import Any

from infra.local.deploy.core import DeployContext, pick
from infra.local.deploy.records import Deployed


def _glue_name(context: DeployContext, logical_id: str, explicit: Any) -> str:
    # Athena reads Glue names in lower case with underscores only.
    generated = context.physical_name(logical_id, limit=255, lower=True).replace("-", "_")
    return str(explicit) if explicit else generated


def deploy_glue_database(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    database = dict(properties["DatabaseInput"])
    database["Name"] = _glue_name(context, logical_id, database.get("Name"))
    context.client("glue").create_database(DatabaseInput=database, **pick(properties, "CatalogId"))
    return Deployed(database["Name"])


def deploy_glue_table(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    table = dict(properties["TableInput"])
    table["Name"] = _glue_name(context, logical_id, table.get("Name"))
    context.client("glue").create_table(
        DatabaseName=properties["DatabaseName"],
        TableInput=table,
        **pick(properties, "CatalogId"),
    )
    return Deployed(table["Name"])
