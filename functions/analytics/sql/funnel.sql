-- Funnel of one campaign: offer_view -> add_to_cart -> checkout -> purchase.
--
-- One row per step (step, position, sessions), all four even when no session reached one.
-- A session of the campaign is its (session_id, campaign_id) among storefront events. Its
-- anchor is its earliest offer_view, and the session counts only when the anchor falls in
-- [start_ms, end_ms). Step k (k >= 2) is reached by the earliest event of step k's type at
-- or after the time step k-1 was reached and at most 24 h (86400000 ms) after the anchor.
--
-- Portable between DuckDB and Athena (Trino): no QUALIFY, every parameter in a WHERE clause
-- (Athena takes execution parameters nowhere else), integer arithmetic only. The archive
-- is read once: each step is a window over the session's rows, not a join of the table
-- with itself, which Trino would scan (and Athena bill) again for every reference.
--
-- parameters: first_dt, last_dt, campaign_id, start_ms, end_ms
WITH copies AS (
    -- The archive is written at least once, and the copies of an event are the same line:
    -- the campaign's funnel events are picked, then one row kept per event_id (a GROUP BY,
    -- cheaper than row_number() in both engines, and the same for copies alike).
    SELECT
        event_id,
        min(type) AS type,
        min(session_id) AS session_id,
        min(occurred_ms) AS occurred_ms
    FROM events
    WHERE
        dt BETWEEN ? AND ?
        AND campaign_id = ?
        AND source = 'storefront'
        AND session_id IS NOT NULL
        AND type IN ('offer_view', 'add_to_cart', 'checkout', 'purchase')
    GROUP BY event_id
),

anchored AS (
    SELECT
        type,
        session_id,
        occurred_ms,
        min(CASE WHEN type = 'offer_view' THEN occurred_ms END)
            OVER (PARTITION BY session_id) AS anchor_ms
    FROM copies
),

carted AS (
    SELECT
        type,
        session_id,
        occurred_ms,
        anchor_ms,
        min(
            CASE
                WHEN
                    type = 'add_to_cart'
                    AND occurred_ms >= anchor_ms
                    AND occurred_ms <= anchor_ms + 86400000
                    THEN occurred_ms
            END
        ) OVER (PARTITION BY session_id) AS cart_ms
    FROM anchored
    WHERE anchor_ms >= ? AND anchor_ms < ?
),

checked_out AS (
    SELECT
        type,
        session_id,
        occurred_ms,
        anchor_ms,
        cart_ms,
        min(
            CASE
                WHEN
                    type = 'checkout'
                    AND occurred_ms >= cart_ms
                    AND occurred_ms <= anchor_ms + 86400000
                    THEN occurred_ms
            END
        ) OVER (PARTITION BY session_id) AS checkout_ms
    FROM carted
),

purchased AS (
    SELECT
        session_id,
        cart_ms,
        checkout_ms,
        min(
            CASE
                WHEN
                    type = 'purchase'
                    AND occurred_ms >= checkout_ms
                    AND occurred_ms <= anchor_ms + 86400000
                    THEN occurred_ms
            END
        ) OVER (PARTITION BY session_id) AS purchase_ms
    FROM checked_out
),

sessions AS (
    SELECT
        session_id,
        min(cart_ms) AS cart_ms,
        min(checkout_ms) AS checkout_ms,
        min(purchase_ms) AS purchase_ms
    FROM purchased
    GROUP BY session_id
),

reached AS (
    SELECT
        count(*) AS viewed,
        count(cart_ms) AS carted,
        count(checkout_ms) AS checked_out,
        count(purchase_ms) AS purchased
    FROM sessions
)

SELECT
    steps.step,
    steps.position,
    CASE steps.position
        WHEN 1 THEN reached.viewed
        WHEN 2 THEN reached.carted
        WHEN 3 THEN reached.checked_out
        ELSE reached.purchased
    END AS sessions
FROM reached
CROSS JOIN (
    VALUES ('offer_view', 1), ('add_to_cart', 2), ('checkout', 3), ('purchase', 4)
) AS steps (step, position)
ORDER BY steps.position
