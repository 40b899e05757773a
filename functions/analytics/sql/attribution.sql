-- Conversions of one campaign by channel, under last-touch and first-touch attribution.
--
-- One row per (model, channel): model is 'last_touch' or 'first_touch', conversions a count.
-- A conversion is the earliest purchase (by occurred_ms, then event_id) of a session of the
-- campaign, counted when it falls in [start_ms, end_ms). Its touches are the storefront
-- events with a utm_source of the same anonymous_id, of any campaign or none, from 30 days
-- (2592000000 ms) before it up to it, both ends included (the purchase itself is a touch
-- when it carries utm). Last touch: the latest (ties: greatest event_id); first touch: the
-- earliest (ties: smallest event_id); no touch: '(direct)/(none)'.
-- Channel: utm_source || '/' || coalesce(utm_medium, '(none)').
--
-- Portable between DuckDB and Athena (Trino): no QUALIFY, every parameter in a WHERE clause
-- (Athena takes execution parameters nowhere else), integer arithmetic only. The archive
-- is read twice, once for the campaign's purchases and once for the touches of any
-- campaign: the least a join of conversions with touches needs.
--
-- parameters: first_dt, last_dt, campaign_id, start_ms, end_ms, first_dt, last_dt
WITH purchases AS (
    -- The archive is written at least once, and the copies of an event are the same line:
    -- the rows wanted are picked, then one row kept per event_id (a GROUP BY, cheaper than
    -- row_number() in both engines, and the same for copies alike).
    SELECT
        event_id,
        min(session_id) AS session_id,
        min(anonymous_id) AS anonymous_id,
        min(occurred_ms) AS occurred_ms
    FROM events
    WHERE
        dt BETWEEN ? AND ?
        AND campaign_id = ?
        AND source = 'storefront'
        AND type = 'purchase'
        AND session_id IS NOT NULL
    GROUP BY event_id
),

conversions AS (
    SELECT event_id, anonymous_id, occurred_ms AS conversion_ms
    FROM (
        SELECT
            event_id,
            anonymous_id,
            occurred_ms,
            row_number() OVER (PARTITION BY session_id ORDER BY occurred_ms, event_id) AS nth
        FROM purchases
    ) AS ordered
    WHERE nth = 1 AND occurred_ms >= ? AND occurred_ms < ?
),

touches AS (
    SELECT
        event_id,
        min(anonymous_id) AS anonymous_id,
        min(occurred_ms) AS occurred_ms,
        min(utm_source || '/' || coalesce(utm_medium, '(none)')) AS channel
    FROM events
    WHERE
        dt BETWEEN ? AND ?
        AND source = 'storefront'
        AND utm_source IS NOT NULL
        AND anonymous_id IS NOT NULL
    GROUP BY event_id
),

ordered_touches AS (
    -- A conversion without a touch keeps one row, its channel null: direct.
    SELECT
        conversions.event_id AS conversion_id,
        touches.channel,
        row_number() OVER (
            PARTITION BY conversions.event_id
            ORDER BY touches.occurred_ms DESC, touches.event_id DESC
        ) AS from_last,
        row_number() OVER (
            PARTITION BY conversions.event_id
            ORDER BY touches.occurred_ms ASC, touches.event_id ASC
        ) AS from_first
    FROM conversions
    LEFT JOIN touches
        ON
            touches.anonymous_id = conversions.anonymous_id
            AND touches.occurred_ms >= conversions.conversion_ms - 2592000000
            AND touches.occurred_ms <= conversions.conversion_ms
),

attributed AS (
    SELECT
        conversion_id,
        coalesce(max(CASE WHEN from_last = 1 THEN channel END), '(direct)/(none)') AS last_touch,
        coalesce(max(CASE WHEN from_first = 1 THEN channel END), '(direct)/(none)') AS first_touch
    FROM ordered_touches
    WHERE from_last = 1 OR from_first = 1
    GROUP BY conversion_id
),

-- Each conversion once per model, from one reference to what came before (a UNION of two
-- would have Trino compute it all twice).
credited AS (
    SELECT
        models.model,
        CASE models.model
            WHEN 'last_touch' THEN attributed.last_touch
            ELSE attributed.first_touch
        END AS channel
    FROM attributed
    CROSS JOIN (VALUES ('last_touch'), ('first_touch')) AS models (model)
)

SELECT model, channel, count(*) AS conversions
FROM credited
GROUP BY model, channel
ORDER BY model DESC, conversions DESC, channel ASC
