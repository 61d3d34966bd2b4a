-- Run once by the postgres image on first start: the schema owner (migrations) and the
-- service's role (owns nothing; may only SELECT the log and call append_events()).
CREATE ROLE huiyin_owner LOGIN PASSWORD 'huiyin_owner';
CREATE ROLE huiyin_app LOGIN PASSWORD 'huiyin_app';
CREATE DATABASE huiyin OWNER huiyin_owner;
