"""Reading taxonomy files into validated pydantic models, with errors that name file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from taxonomy.errors import TaxonomyError

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaxonomyError(path, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise TaxonomyError(path, None, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TaxonomyError(path, None, f"not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None


def dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validate(model: type[ModelT], data: Any, path: Path, root_key: str | None = None) -> ModelT:
    """Validate ``data`` as ``model``; the first problem becomes a TaxonomyError naming its key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = dotted(err["loc"])
        if root_key:
            key = f"{root_key}.{key}" if key else root_key
        raise TaxonomyError(path, key or None, err["msg"]) from None


def load_model(model: type[ModelT], path: Path) -> ModelT:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise TaxonomyError(path, None, "expected a mapping at the top level")
    return validate(model, data, path)
