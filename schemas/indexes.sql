-- indexes.sql - built once, after recording ends (cheaper than maintaining
-- them during the bulk insert).  Part of the schema contract.
CREATE INDEX IF NOT EXISTS frames_ip ON frames(ip);
CREATE INDEX IF NOT EXISTS markers_seq ON markers(seq);
CREATE INDEX IF NOT EXISTS rss_samples_ts ON rss_samples(process_id, ts);
