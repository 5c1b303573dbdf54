"""What operators watch: Prometheus metrics, readiness and trace spans of vendor calls.

- `metrics`: counters and histograms of vendor calls (recorded by the shared HTTP layer),
  retries, rate-limit waits and Cention callbacks; the `/metrics` text, multiprocess-aware;
- `readiness`: the `/ready` report (enabled integrations, each one's last call, stopping);
- `tracing`: child spans of the action's span for vendor calls, when rasa-sdk traces;
- `server`: the action server's `/metrics` and `/ready` routes and the drain on SIGTERM,
  attached by the rasa-sdk plugin hook (`rasa_service_desk.plugin`).

See docs/operations.md ("Metrics, readiness and traces").
"""
