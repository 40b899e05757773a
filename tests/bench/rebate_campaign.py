"""The rebate campaign the claims benchmarks publish: their own part and the cold starts."""

from __future__ import annotations

from typing import Any, Final

# A rebate campaign for the claims benchmarks (their part, and the cold starts): tiers of
# ¥1,000 from ¥8,000 and ¥2,500 from ¥15,000, up to ¥2,000 approved automatically, with
# caps no run reaches.
REBATE_CAMPAIGN: Final[dict[str, Any]] = {
    "id": "bench-rebate",
    "name": "Claims benchmark",
    "kind": "rebate",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-05-01T00:00:00+09:00",
    "ends_at": "2027-06-01T00:00:00+09:00",
    "budget": {"amount": 10_000_000_000},
    "eligibility": {"channels": ["online", "in_store"], "skus": ["TRAIL-01", "TRAIL-02"]},
    "reward": {
        "tiered": [{"min_purchase": 8000, "amount": 1000}, {"min_purchase": 15000, "amount": 2500}]
    },
    "limits": {"per_customer": 1_000_000},
    "claims": {
        "window_days": 30,
        "require_receipt": True,
        "auto_approve_up_to": 2000,
        "review_timeout_hours": 72,
    },
    "cashback": {"pending_days": 0, "expires_after_days": 365},
}
