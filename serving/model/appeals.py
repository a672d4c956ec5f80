"""An appeal as the classifier receives it, and the rules for accepting one (the same for CLI and API).

Rules:
- ``text`` is required; empty or whitespace-only text is refused, and so is text longer than
  ``MAX_TEXT_CHARS`` (20,000) characters; a title longer than ``MAX_TITLE_CHARS`` (500) is refused;
- full-width and traditional characters are normalised later (``taxonomy.text``); emoji and other
  symbols are kept and ignored by the features.
"""

from __future__ import annotations

from dataclasses import dataclass

from taxonomy.text import normalize

MAX_TEXT_CHARS = 20_000
MAX_TITLE_CHARS = 500


class AppealInputError(ValueError):
    """An appeal cannot be classified: names the field and the reason."""

    def __init__(self, field_name: str, reason: str, appeal_id: str | None = None):
        self.field, self.reason, self.appeal_id = field_name, reason, appeal_id
        prefix = f"appeal {appeal_id}: " if appeal_id is not None else ""
        super().__init__(f"{prefix}{field_name}: {reason}")


@dataclass(frozen=True)
class AppealInput:
    text: str
    title: str = ""
    id: str | None = None
    address: str | None = None


def validate_appeal(appeal: AppealInput) -> AppealInput:
    if not isinstance(appeal.text, str):
        raise AppealInputError("text", "must be a string", appeal.id)
    title = appeal.title if isinstance(appeal.title, str) else ""
    if appeal.title is not None and not isinstance(appeal.title, str):
        raise AppealInputError("title", "must be a string", appeal.id)
    if len(appeal.text) > MAX_TEXT_CHARS:
        raise AppealInputError("text", f"is {len(appeal.text)} characters; the limit is {MAX_TEXT_CHARS}", appeal.id)
    if len(title) > MAX_TITLE_CHARS:
        raise AppealInputError("title", f"is {len(title)} characters; the limit is {MAX_TITLE_CHARS}", appeal.id)
    if not normalize(appeal.text):
        raise AppealInputError("text", "is empty", appeal.id)
    return appeal


class JsonlError(ValueError):
    """A JSON-lines file has a line that is not a UTF-8 JSON object: names the line."""

    def __init__(self, line: int, reason: str):
        self.line, self.reason = line, reason
        super().__init__(f"line {line}: {reason}")


def read_jsonl(path) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line; the first bad line raises ``JsonlError``."""
    import json

    rows = []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
            except UnicodeDecodeError as exc:
                raise JsonlError(number, f"not valid UTF-8 ({exc.reason})") from None
            except json.JSONDecodeError as exc:
                raise JsonlError(number, f"not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise JsonlError(number, "expected a JSON object")
            rows.append((number, obj))
    return rows
