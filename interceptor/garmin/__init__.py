"""Garmin Connect, an optional extra: a person's weigh-ins uploaded as FIT weight files.

`settings` is the `[garmin]` section; `library` is the one module that imports garminconnect (sign-in,
token refresh, the upload request) and turns what it raises into sentences; `tokens` keeps each
person's sign-in in the data directory; `uploader` decides what to send and remembers what was sent;
`sink` pushes new weigh-ins from `serve` through the journal's outbox; `cli` holds the commands.
"""
