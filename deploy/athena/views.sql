-- The report's views as Athena SQL, over the warden_audit table (warden_audit.sql). Run the CREATE VIEW
-- statements once; run the queries below with execution parameters (the console's parameter boxes, or
-- `aws athena start-query-execution --execution-parameters ...`), one value per ? in the order listed above
-- each query. Name a dt range in every query: partition projection reads only the partitions it names.
--
-- They count as `warden audit report` does: call records only (checkpoints have kind = 'checkpoint'), each
-- request_id once (delivery is at least once), an aggregated denial record as its `count` calls; the account is
-- src_account, else the aws.account tag, else the account in the ECS task or cluster ARN, else 'unknown'; the
-- network is src_vpc/src_subnet as far as known, else src_vpce, else ''; the model model_canonical, else
-- model; findings the sum of the findings' counts.

-- One row per call record, duplicates dropped, with the access path's columns. A re-delivered record has the
-- same time and so the same dt/hour partition: partitioning the window by them too lets a dt predicate on this
-- view prune partitions.
CREATE OR REPLACE VIEW warden_audit_calls AS
SELECT
  r.*,
  from_iso8601_timestamp(r."time") AS call_time,
  IF(r."count" > 1, r."count", 1) AS calls,
  COALESCE(
    NULLIF(r.src_account, ''),
    NULLIF(element_at(r.tags, 'aws.account'), ''),
    regexp_extract(element_at(r.tags, 'ecs.task_arn'), '^arn:[^:]*:[^:]*:[^:]*:([^:]+):', 1),
    regexp_extract(element_at(r.tags, 'ecs.cluster'), '^arn:[^:]*:[^:]*:[^:]*:([^:]+):', 1),
    'unknown') AS account,
  CASE
    WHEN COALESCE(r.src_vpc, '') <> '' AND COALESCE(r.src_subnet, '') <> '' THEN r.src_vpc || '/' || r.src_subnet
    WHEN COALESCE(r.src_vpc, '') <> '' THEN r.src_vpc
    WHEN COALESCE(r.src_subnet, '') <> '' THEN r.src_subnet
    ELSE COALESCE(r.src_vpce, '')
  END AS network,
  COALESCE(NULLIF(r.model_canonical, ''), r.model, '') AS model_key,
  reduce(COALESCE(r.findings, ARRAY[]), 0, (s, f) -> s + IF(f."count" > 0, f."count", 0), s -> s) AS findings_total,
  flatten(transform(COALESCE(r.findings, ARRAY[]), f -> ARRAY[f.type, f.guard || '/' || f.type])) AS finding_keys
FROM (
  SELECT a.*, row_number() OVER (PARTITION BY a.dt, a.hour, COALESCE(a.request_id, a.hash) ORDER BY a.seq) AS copy
  FROM warden_audit a
  WHERE a.kind IS NULL
) r
WHERE r.copy = 1;

-- Access paths (the report's "Access paths" table): account -> VPC/subnet -> app -> model.
-- Parameters: 1 first dt ('2026-12-01'), 2 last dt ('2026-12-07').
SELECT account, network AS "vpc/subnet", app, model_key AS model,
  sum(calls) AS calls,
  sum(IF(decision = 'deny', calls, 0)) AS deny,
  sum(IF(decision = 'dry-run-deny', calls, 0)) AS dry_run_deny,
  sum(findings_total) AS findings
FROM warden_audit_calls
WHERE dt BETWEEN ? AND ?
GROUP BY account, network, app, model_key
ORDER BY calls DESC, account, network, app, model_key;

-- Access path edges (the report's "Access path edges" table, the Sankey graph's ribbons).
-- Parameters: 1 first dt, 2 last dt.
WITH calls AS (
  SELECT * FROM warden_audit_calls WHERE dt BETWEEN ? AND ?
), edges AS (
  SELECT 0 AS layer, 'account -> vpc/subnet' AS step, account AS from_node, network AS to_node, calls, decision, findings_total FROM calls
  UNION ALL
  SELECT 1, 'vpc/subnet -> app', network, app, calls, decision, findings_total FROM calls
  UNION ALL
  SELECT 2, 'app -> model', app, model_key, calls, decision, findings_total FROM calls
)
SELECT step, from_node, to_node,
  sum(calls) AS calls,
  sum(IF(decision = 'deny', calls, 0)) AS deny,
  sum(IF(decision = 'dry-run-deny', calls, 0)) AS dry_run_deny,
  sum(findings_total) AS findings
FROM edges
GROUP BY layer, step, from_node, to_node
ORDER BY layer, calls DESC, from_node, to_node;

-- Exposure (the report's exposure view, `warden audit report --account --vpc --subnet --app --model
-- --finding-type --from --to`): every path the matching records took, with their record ids. '' leaves a
-- filter out. Parameters: 1 first dt, 2 last dt (the partitions to read), 3 from (RFC 3339, inclusive),
-- 4 to (exclusive), 5 account, 6 vpc, 7 subnet, 8 app, 9 model (canonical or as requested), 10 finding type
-- ('EMAIL' or 'pii-block/EMAIL').
SELECT account, network AS "vpc/subnet", app, model_key AS model,
  sum(calls) AS calls,
  sum(IF(decision = 'deny', calls, 0)) AS deny,
  sum(IF(decision = 'dry-run-deny', calls, 0)) AS dry_run_deny,
  sum(findings_total) AS findings,
  min(call_time) AS first,
  max(call_time) AS last,
  array_join(array_agg(COALESCE(request_id, '') ORDER BY call_time, request_id), ' ') AS record_ids
FROM warden_audit_calls
WHERE dt BETWEEN ? AND ?
  AND call_time >= from_iso8601_timestamp(?)
  AND call_time < from_iso8601_timestamp(?)
  AND ? IN ('', account)
  AND ? IN ('', COALESCE(src_vpc, ''))
  AND ? IN ('', COALESCE(src_subnet, ''))
  AND ? IN ('', app)
  AND ? IN ('', COALESCE(model, ''), COALESCE(model_canonical, ''))
  AND contains(concat(ARRAY[''], finding_keys), ?)
GROUP BY account, network, app, model_key
ORDER BY calls DESC, account, network, app, model_key;
