"""Production operations: what running many instances behind a load balancer needs around the
application itself. One concept per module:

* ``request_id`` — the id of the request being served, carried in a context variable;
* ``logs`` — text or JSON log lines that carry that id; no secrets;
* ``observe`` — the outermost HTTP layer: request id, access log, request metrics;
* ``metrics`` — counters, gauges and histograms in the Prometheus text format;
* ``metrics_http`` — serving them: ``/metrics`` behind a token, or a separate listener;
* ``forwarded`` — ``X-Forwarded-For``/``-Proto`` believed only from trusted proxies;
* ``shutdown`` — draining on SIGTERM: readiness off, grace period, clean cancellation."""
