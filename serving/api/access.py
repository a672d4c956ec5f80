"""Who may call which route: the one role table (docs/PRIVACY.md prints it, and a test walks every route of
the OpenAPI with every role against it). The routes enforce it through their dependencies
(``serving.api.deps``: ``IntakeActor``, ``Reviewer``, ``Analyst``, ``Admin``) and, for the actions on a
ticket, through the workflow's rules (``serving.domain.workflow.RULES``), from which their rows are made.

``PUBLIC``: no key. ``ANY``: any valid key (what each role sees of a ticket is ``serving.domain.privacy``;
a unit lists and reads the tickets it has or had, the intake role those it received).
"""

from __future__ import annotations

from serving.domain.enums import Role
from serving.domain.workflow import RULES

PUBLIC = "public"
ANY = "any"
ROLES = tuple(str(r) for r in Role)
ANALYST = ("analyst", "reviewer", "admin")


def _action_roles(action: str) -> tuple[str, ...]:
    rule = RULES[action]
    roles = {str(r) for r in rule.roles}
    if rule.unit_must_be is None:
        roles.add("admin")  # an admin takes a unit's action only as that unit (``as_unit``, imports)
    return tuple(r for r in ROLES if r in roles)


ACCESS: dict[str, str | tuple[str, ...]] = {
    "POST /v1/appeals": ("intake", "admin"),
    "GET /v1/tickets": ANY,
    "GET /v1/tickets/{ticket_id}": ANY,
    **{f"POST /v1/tickets/{{ticket_id}}/{action}": _action_roles(action) for action in RULES},
    "GET /v1/review/queue": ("reviewer", "admin"),
    "GET /v1/scores": ANY,
    "GET /v1/units": ANY,
    "POST /v1/units/import": ("admin",),
    "POST /v1/units/{unit_id}/merge": ("admin",),
    "GET /v1/analytics/volume": ANALYST,
    "GET /v1/analytics/hotspots": ANALYST,
    "GET /v1/analytics/topics": ANALYST,
    "GET /v1/alerts": ANALYST,
    "GET /v1/topics": ANY,
    "POST /v1/topics": ANALYST,
    "GET /v1/topics/{topic_id}": ANY,
    "POST /v1/ledger/sync": ANALYST,
    "GET /v1/ledger": ANY,
    "POST /v1/ledger/{entry_id}/close": ("reviewer", "admin"),
    "GET /v1/reports/{kind}": ANALYST,
    "GET /healthz": PUBLIC,
    "GET /readyz": PUBLIC,
    "GET /metrics": ("analyst", "admin"),  # or PUBLIC with JIESU_METRICS_PUBLIC
    "GET /v1/models/current": ANY,
    "POST /v1/models/reload": ("admin",),
    "GET /v1/keys": ("admin",),
    "POST /v1/keys": ("admin",),
    "POST /v1/keys/{key_id}/revoke": ("admin",),
    "POST /v1/lookup": PUBLIC,
    "GET /v1/outbox": ("callback", "admin"),  # a citizen: ticket number + the phone it was filed with, rate-limited
    # Open311 GeoReport v2: the catalogue is public; requests are tickets (masked, no caller data)
    "GET /open311/v2/services.json": PUBLIC,
    "GET /open311/v2/services/{service_code}.json": PUBLIC,
    "POST /open311/v2/requests.json": ("intake", "admin"),
    "GET /open311/v2/requests.json": ANY,
    "GET /open311/v2/requests/{service_request_id}.json": ANY,
    # the pages (/ui) enforce the roles of the API they show
    "GET /ui/queue": ("reviewer", "admin"),
    "POST /ui/tickets/{ticket_id}/assign": ("reviewer", "admin"),
    "GET /ui/tickets/{ticket_id}": ANY,
    "GET /ui/rankings": ANY,
    "GET /ui/hotspots": ANALYST,
}


def allowed(route: str, role: str | None) -> bool:
    """Whether ``role`` (None: no key) may call ``route`` ("METHOD /path")."""
    rule = ACCESS[route]
    if rule == PUBLIC:
        return True
    if role is None:
        return False
    return rule == ANY or role in rule


def markdown() -> str:
    """The table as docs/PRIVACY.md shows it."""
    lines = ["| route | " + " | ".join(ROLES) + " |", "|---|" + "---|" * len(ROLES)]
    for route, rule in ACCESS.items():
        cells = ["public" if rule == PUBLIC else "✓" if allowed(route, role) else "" for role in ROLES]
        lines.append(f"| `{route}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
