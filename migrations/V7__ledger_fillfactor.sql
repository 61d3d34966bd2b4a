-- V7: leave room on every ledger page, so that an update which changes no indexed column (a
-- note, a new version) is a HOT update: no index is touched, the GIN search index included.
ALTER TABLE ledger SET (fillfactor = 70);
