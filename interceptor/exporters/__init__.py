"""Weigh-ins out of the journal: openScale CSV, the vocabulary's CSV and JSON, Garmin FIT files, and
(an optional extra) Garmin Connect. Every exporter streams: a decade of weigh-ins costs one row's
memory (and a FIT file's 200 messages)."""
