-- V15: the cases of one village, newest first, without reading the table: serves the ledger
-- filtered by village, and a search within a village (its probe walks this index; its exact step
-- intersects it with the search index). The village of a case is set at registration and never
-- changes, so updates stay HOT where they were.
CREATE INDEX ledger_village_received_idx ON ledger (village_id, received_at, case_id);
