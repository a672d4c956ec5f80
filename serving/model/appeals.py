"""An appeal as jiesu receives it — one shape from the API, the CLI and the training scripts to the
router and the ticket service — and the rules for accepting one.

Rules (``validate_appeal``, the one place they are checked):
- ``text`` is required; empty or whitespace-only text is refused, and so is text longer than
  ``MAX_TEXT_CHARS`` (20,000) characters; a title longer than ``MAX_TITLE_CHARS`` (500) is refused;
- text, title, address and the caller's name must be valid Unicode (no lone surrogates) and hold no NUL character;
- a validated appeal carries its normalised title and text (full-width and traditional characters
  folded, ``taxonomy.text.normalize``), computed once; emoji and other symbols are kept and ignored by
  the features.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

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
    """What the citizen said and how it reached the hotline. ``received_at`` None means now."""

    text: str
    title: str = ""
    id: str | None = None
    address: str | None = None
    channel: str = "other"
    received_at: datetime | None = None
    caller_name: str | None = None
    caller_phone: str | None = None
    # set by ``validate_appeal``: the normalised title and text the router reads
    clean_title: str | None = field(default=None, compare=False, repr=False)
    clean_text: str | None = field(default=None, compare=False, repr=False)

    @property
    def validated(self) -> bool:
        return self.clean_text is not None

    def fingerprint_fields(self) -> list:
        """Every field a retry must repeat (the idempotency fingerprint)."""
        return [self.text, self.title, self.channel, self.address, self.caller_name, self.caller_phone,
                self.received_at.isoformat() if self.received_at else None]


def _check_string(appeal: AppealInput, name: str, value) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise AppealInputError(name, "must be a string", appeal.id)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise AppealInputError(name, "holds characters that are not valid Unicode (lone surrogates)",
                               appeal.id) from None
    if "\x00" in value:
        raise AppealInputError(name, "must not contain NUL characters", appeal.id)


def validate_appeal(appeal: AppealInput) -> AppealInput:
    """The appeal, checked and with its normalised title and text; raises ``AppealInputError``."""
    if appeal.validated:
        return appeal
    if appeal.text is None:
        raise AppealInputError("text", "missing", appeal.id)
    for name in ("text", "title", "address", "caller_name"):
        _check_string(appeal, name, getattr(appeal, name))
    title = appeal.title or ""
    if len(appeal.text) > MAX_TEXT_CHARS:
        raise AppealInputError("text", f"is {len(appeal.text)} characters; the limit is {MAX_TEXT_CHARS}", appeal.id)
    if len(title) > MAX_TITLE_CHARS:
        raise AppealInputError("title", f"is {len(title)} characters; the limit is {MAX_TITLE_CHARS}", appeal.id)
    text = normalize(appeal.text)
    if not text:
        raise AppealInputError("text", "is empty (it holds only spaces or invisible characters)", appeal.id)
    return replace(appeal, title=title, clean_title=normalize(title), clean_text=text)


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
