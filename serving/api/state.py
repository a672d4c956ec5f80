"""What the running service holds: settings, database, taxonomy, and the model (swappable at run time)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from serving.model.predictor import Predictor
from serving.settings import Settings
from taxonomy import Taxonomy


REGISTRY_CHECK_S = 1.0  # how often a process asks whether the unit registry changed


@dataclass
class ServiceState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    taxonomy: Taxonomy  # the profile with the store's unit registry (``refresh_units``)
    predictor: Predictor | None = None
    model_path: Path | None = None
    model_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    profile: Taxonomy | None = None  # the profile as loaded, before the store's registry replaced its units
    registry_version: int = -1
    registry_checked: float = 0.0
    outbox_sender: object | None = None  # how messages reach citizens (``serving.services.outbox``)

    def refresh_units(self, session: Session, force: bool = False) -> bool:
        """Rebuild the unit registry (and the predictor's place resolver) when the store's changed; asked
        at most every ``REGISTRY_CHECK_S`` seconds unless forced. Returns whether it was rebuilt."""
        from serving.services.units import registry_from_store, registry_version

        now = time.monotonic()
        if not force and now - self.registry_checked < REGISTRY_CHECK_S:
            return False
        self.registry_checked = now
        version = registry_version(session)
        if version == self.registry_version and not force:
            return False
        profile = self.profile or self.taxonomy
        registry, aliases = registry_from_store(session, profile)
        taxonomy = replace(profile, units=registry, street_aliases=aliases)
        with self.lock:
            self.profile, self.taxonomy, self.registry_version = profile, taxonomy, version
            if self.predictor is not None:
                self.predictor = self.predictor.with_taxonomy(taxonomy)
        return True

    def load_model(self, path: Path) -> Predictor:
        """Load a bundle; the old one keeps serving unless the new one loads completely."""
        predictor = Predictor(path, self.taxonomy)
        with self.lock:
            self.predictor, self.model_path, self.model_error = predictor, Path(path), None
        return predictor
