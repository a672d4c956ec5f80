"""What the running service holds: settings, database, taxonomy, and the model (swappable at run time)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from serving.model.predictor import Predictor
from serving.settings import Settings
from taxonomy import Taxonomy


@dataclass
class ServiceState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    taxonomy: Taxonomy
    predictor: Predictor | None = None
    model_path: Path | None = None
    model_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load_model(self, path: Path) -> Predictor:
        """Load a bundle; the old one keeps serving unless the new one loads completely."""
        predictor = Predictor(path, self.taxonomy)
        with self.lock:
            self.predictor, self.model_path, self.model_error = predictor, Path(path), None
        return predictor
