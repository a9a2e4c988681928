-- The Glue/Athena table over the audit S3 sink's objects (audit.sinks[].s3):
--
--   s3://BUCKET/PREFIX/dt=YYYY-MM-DD/hour=HH/<instance>-<first id>-<unix nanos>.jsonl.gz
--
-- one JSON line per call record or signed checkpoint (kind = 'checkpoint'), each with its hash-chain fields
-- (seq, prev, hash; sig on checkpoints). Partition projection computes the dt/hour partitions from the query's
-- predicates, so no crawler or MSCK REPAIR is needed and a query that names dt (and hour) reads only those
-- objects. Replace s3://BUCKET/PREFIX/ (twice: LOCATION and storage.location.template) with the sink's
-- bucket and prefix, and the dt range's start with the day the sink started.
--
-- The columns are generated from audit.Record (go test ./audit -run TestAthenaColumns checks them; -update
-- rewrites the block): a renamed or new record field fails that test until this file follows. Fields a line
-- does not have read as NULL (the encoder leaves out empty optional fields). `time` is RFC 3339 in UTC: use
-- from_iso8601_timestamp("time"), or the warden_audit_calls view (views.sql), which also drops re-delivered
-- duplicates.
CREATE EXTERNAL TABLE IF NOT EXISTS warden_audit (
  -- columns: generated from audit.Record by `go test ./audit -run TestAthenaColumns -update`; do not edit
  `v` bigint,
  `time` string,
  `instance` string,
  `request_id` string,
  `upstream_request_id` string,
  `client` string,
  `protocol` string,
  `mode` string,
  `host` string,
  `signing` string,
  `identity_source` string,
  `identity_stale` boolean,
  `tags` map<string,string>,
  `weak_tags` array<string>,
  `src_account` string,
  `src_vpc` string,
  `src_subnet` string,
  `src_eni` string,
  `src_vpce` string,
  `upstream` string,
  `upstream_vpce` string,
  `upstream_region` string,
  `app` string,
  `end_user` string,
  `operation` string,
  `model` string,
  `model_canonical` string,
  `model_resolved` array<string>,
  `model_resolved_stale` boolean,
  `agent_id` string,
  `agent_alias_id` string,
  `flow_id` string,
  `flow_alias_id` string,
  `agent_session_id` string,
  `knowledge_base_ids` array<string>,
  `agent_models` array<string>,
  `policy_hash` string,
  `policy_serial` bigint,
  `policy_expired` boolean,
  `decision` string,
  `rule` string,
  `reason` string,
  `status` bigint,
  `error_type` string,
  `incomplete` boolean,
  `count` bigint,
  `findings` array<struct<guard:string,detector:string,type:string,count:bigint,action:string,phase:string>>,
  `prompt_sha256` string,
  `response_sha256` string,
  `tokens_in` bigint,
  `tokens_out` bigint,
  `cache_read_tokens` bigint,
  `cache_write_tokens` bigint,
  `cost_usd` double,
  `budget_fallback` boolean,
  `bytes_in` bigint,
  `bytes_out` bigint,
  `latency_ms` double,
  `upstream_latency_ms` double,
  `upstream_total_ms` double,
  `seq` bigint,
  `prev` string,
  `hash` string,
  `kind` string,
  `id` string,
  `key` string,
  `final` boolean,
  `sig` string
  -- end of generated columns
)
PARTITIONED BY (dt string, hour int)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true')
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://BUCKET/PREFIX/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2026-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = 's3://BUCKET/PREFIX/dt=${dt}/hour=${hour}/',
  'classification' = 'json',
  'compressionType' = 'gzip'
);
