-- Sessions and conversions of one campaign, by 15-minute UTC slot, for the days of a report.
--
-- One row per slot that has any (slot_ms, sessions, conversions); slot_ms is the slot's
-- start in epoch milliseconds. The caller adds the slots up into campaign-local days: every
-- time zone in use is offset from UTC by a whole number of quarter hours, so a slot never
-- straddles two local days, and the SQL needs no time zone function (DuckDB and Trino
-- convert time zones with different functions and different semantics).
-- A session of the campaign is its (session_id, campaign_id) among storefront events,
-- placed at its earliest event; a conversion is its earliest purchase. Each counts when it
-- falls in [start_ms, end_ms).
--
-- Portable between DuckDB and Athena (Trino): no QUALIFY, every parameter in a WHERE clause
-- (Athena takes execution parameters nowhere else), integer arithmetic only (% on positive
-- bigints agrees in both). The archive is read once.
--
-- parameters: first_dt, last_dt, campaign_id, start_ms, end_ms
WITH copies AS (
    -- The archive is written at least once, and the copies of an event are the same line:
    -- the campaign's events are picked, then one row kept per event_id (a GROUP BY,
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
    GROUP BY event_id
),

campaign_sessions AS (
    SELECT
        session_id,
        min(occurred_ms) AS first_ms,
        min(CASE WHEN type = 'purchase' THEN occurred_ms END) AS conversion_ms
    FROM copies
    GROUP BY session_id
),

-- Each session once as a session and once as a conversion, from one reference (a UNION
-- of two would have Trino compute it all twice).
moments AS (
    SELECT
        kinds.kind,
        CASE kinds.kind
            WHEN 'session' THEN campaign_sessions.first_ms
            ELSE campaign_sessions.conversion_ms
        END AS at_ms
    FROM campaign_sessions
    CROSS JOIN (VALUES ('session'), ('conversion')) AS kinds (kind)
)

SELECT
    at_ms - at_ms % 900000 AS slot_ms,
    count(CASE WHEN kind = 'session' THEN 1 END) AS sessions,
    count(CASE WHEN kind = 'conversion' THEN 1 END) AS conversions
FROM moments
WHERE at_ms >= ? AND at_ms < ?
GROUP BY at_ms - at_ms % 900000
ORDER BY slot_ms
