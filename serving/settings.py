"""Settings, in one place, from environment variables prefixed ``JIESU_`` (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JIESU_", env_file=None, extra="ignore")

    request_threads: int = Field(40, ge=1, le=1000, description="Requests one worker process runs at once "
                                                                 "(threads); more wait their turn")
    outbox_sender: str = Field("log", description="How messages reach citizens: log (a JSON-lines file, masked) or "
                                                  "module:Class with send(message)")
    outbox_log: Path = Field(Path("var/outbox.jsonl"), description="The log sender's file")
    outbox_interval_s: float = Field(10, ge=0, description="Seconds between outbox deliveries; 0: off")
    lookup_per_minute: int = Field(10, ge=1, description="Ticket lookups (number + phone) a client address may make "
                                                         "a minute, per worker process")
    metrics_public: bool = Field(False, description="Serve /metrics without a key (only where the port is "
                                                     "reachable from the monitoring alone)")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Request bodies larger than this get 413")
    db_busy_timeout_s: float = Field(5, gt=0, description="How long a request waits for a locked database "
                                                          "before it answers 503 with Retry-After")
    clock_skew_s: float = Field(300, ge=0, description="How far in the future a received_at may lie (clocks differ)")
    database_url: str = Field("sqlite:///var/jiesu.db", description="SQLAlchemy URL: sqlite:///… or postgresql+psycopg://…")
    model_path: Path | None = Field(None, description="Model bundle directory; without one the service runs degraded (intake queues appeals for review)")
    bootstrap_admin_key: str | None = Field(None, description="An admin API key created at start when not yet present")
    review_threshold: float | None = Field(None, ge=0, le=1, description="Category confidence below which a ticket goes to review; default from the profile's dispatch.yaml")
    profile: str = Field("beijing", description="Taxonomy profile name or directory")
    data_dir: Path | None = Field(None, description="Shared data directory (official street list)")
    supervise_interval_s: float = Field(300, ge=0, description="Seconds between 督办 sweeps of overdue tickets; 0: off")
