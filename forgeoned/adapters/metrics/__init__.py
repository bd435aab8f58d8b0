"""Prometheus: the scrape-time collector, its model and the HTTP server."""
