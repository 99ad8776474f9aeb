"""The household page: every person's weigh-ins, trends and unclaimed weigh-ins in a browser, served
by `interceptor serve` on its own listener from the journal alone (no InfluxDB, no CDN, no build)."""
