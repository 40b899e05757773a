"""The campaign file a marketer writes, as pydantic models: the single source of truth.

The same models validate an upload to the campaigns bucket, run behind
`rebates campaigns validate FILE`, re-read a published campaign's stored ``config``, and
generate ``events/campaign.schema.json``.

Validation has two layers, so that a file with five mistakes gets five errors at once:

- the *shape*: the models themselves (types, ranges, formats, unknown keys). pydantic
  reports every field error it finds in one pass;
- the *rules* that relate fields to each other (``starts_at`` before ``ends_at``, exactly
  one kind of reward, the sections a kind needs, ...). pydantic skips a model's own
  validators as soon as one of its fields fails, which would hide these behind the first
  typo, so the rules read the raw document instead: each reads only the values it needs,
  each validated with the field's own type, and says nothing when one of them is
  missing or invalid (the shape layer already reported it). Every rule reports at the
  precise path of the value to fix.

`parse_campaign` runs both and raises `CampaignFileError` with every error. A
`CampaignConfig.model_validate` on its own enforces the rules too (it raises on the
first layer that fails), so no caller can hold a config that breaks them.

The modules, each importing only those above it:

- `fields`: the field types (ids, codes, amounts in minor units, percentages, rates);
- `kinds`: the sections each campaign kind needs, the goals it can reach and the keys
  each code mode takes, feeding both the rules and the JSON Schema's conditionals;
- `sections`: the section models (budget, eligibility, reward, goals, claims, offers, ...);
- `document`: the raw document read as the models would hold it, and `Problem`;
- `rules`: the rules relating the sections' fields;
- `campaign`: `CampaignConfig`, the rules over its own fields, and the list of rules;
- `schema`: `campaign_json_schema`;
- `errors`: `CampaignFileError` and the problems shaped into its path and message;
- `loading`: reading YAML and JSON files, and `parse_campaign`.

No module here imports PynamoDB or boto3: the CLI loads this package without them.
"""

from functions.campaigns.config.campaign import MAX_OFFERS, CampaignConfig
from functions.campaigns.config.errors import CampaignFileError
from functions.campaigns.config.loading import (
    MAX_FILE_BYTES,
    load_campaign_file,
    parse_campaign,
    read_campaign_document,
)
from functions.campaigns.config.schema import campaign_json_schema
from functions.campaigns.config.sections import (
    BudgetConfig,
    CashbackConfig,
    ClaimsConfig,
    CodesConfig,
    DiscountConfig,
    EligibilityConfig,
    GoalsConfig,
    LimitsConfig,
    OfferConfig,
    RewardConfig,
    Tier,
    UsageConfig,
)

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_OFFERS",
    "BudgetConfig",
    "CampaignConfig",
    "CampaignFileError",
    "CashbackConfig",
    "ClaimsConfig",
    "CodesConfig",
    "DiscountConfig",
    "EligibilityConfig",
    "GoalsConfig",
    "LimitsConfig",
    "OfferConfig",
    "RewardConfig",
    "Tier",
    "UsageConfig",
    "campaign_json_schema",
    "load_campaign_file",
    "parse_campaign",
    "read_campaign_document",
]
