"""The TLS probe: who tried TLS on port 443 of this box, and for which server name (nothing more)."""
