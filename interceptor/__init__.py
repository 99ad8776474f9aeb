"""Scale Interceptor: bathroom scales off the vendor cloud, into your own journal, InfluxDB and Grafana."""

__version__ = "0.1.0"
