"""Prometheus metrics: requests and latencies by route, predictions by label, tickets by status.

Each app owns its registry (tests create many apps in one process)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request

from serving.domain.enums import Status

STATUSES = tuple(Status)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("jiesu_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("jiesu_http_request_seconds", "HTTP request latency", ["method", "route"],
                                 registry=self.registry)
        self.predictions = Counter("jiesu_predictions_total", "Classified appeals by label",
                                   ["category", "urgency", "appeal_type"], registry=self.registry)
        self.tickets = Gauge("jiesu_tickets", "Tickets by status", ["status"], registry=self.registry)

    def record_ticket(self, ticket) -> None:
        self.predictions.labels(ticket.category, str(ticket.urgency), ticket.appeal_type).inc()

    def render(self, ticket_counts: dict[str, int]) -> bytes:
        for status in STATUSES:
            self.tickets.labels(status).set(ticket_counts.get(status, 0))
        return generate_latest(self.registry)


class MetricsMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        metrics: Metrics = request.app.state.metrics
        path = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.requests.labels(request.method, path, str(response.status_code)).inc()
        metrics.latency.labels(request.method, path).observe(time.perf_counter() - started)
        return response
