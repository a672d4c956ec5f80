"""Citizens' data kept in its place: which role sees which field of a ticket, and the masking of the
numbers a citizen may say in an appeal.

Rules:
- ``VIEWS`` is the one table (docs/PRIVACY.md prints it): per role, whether the appeal's text (and the
  notes and replies on it) is shown as written or masked, and whether the caller's name and phone are
  shown at all. The handling unit and the intake desk that took the call see them for their own tickets
  (who may read which ticket is ``TicketService.visible_to``); the callback role needs the phone for 回访;
  reviewers and analysts route and count, and see masked text without the caller;
- reports, hotspots, alerts, the problem ledger and exported training data always use masked text;
- masking keeps the shape and the last digits, so a reader still sees that a number was given:
  mobile 139****5678, landline 010-****5678, ID card 110105********123X, bank card ************1234.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ID cards first (18 characters, may end in X), then bank cards (16–19 digits, maybe in groups of four),
# then mobiles (11 digits from 13–19), then landlines (area code 0xx(x), 7–8 digits).
ID_CARD = re.compile(r"(?<![0-9A-Za-z])([1-9]\d{5})(\d{8})(\d{3}[0-9Xx])(?![0-9A-Za-z])")
BANK_CARD = re.compile(r"(?<!\d)((?:\d{4}[ -]?){3,4}\d{0,3})(\d{4})(?!\d)")
MOBILE = re.compile(r"(?<!\d)(?:\+?86[ -]?)?(1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})(?!\d)")
LANDLINE = re.compile(r"(?<!\d)(0\d{2,3})([ -]?)(\d{3,4})(\d{4})(?!\d)")


def _stars(text: str) -> str:
    return re.sub(r"\d", "*", text)


def mask(text: str | None) -> str | None:
    """The text with phone, ID-card and bank-card numbers masked; None stays None."""
    if not text:
        return text
    text = ID_CARD.sub(lambda m: m.group(1) + "*" * 8 + m.group(3), text)
    text = BANK_CARD.sub(lambda m: _stars(m.group(1)) + m.group(2)
                         if len(re.sub(r"\D", "", m.group(0))) >= 16 else m.group(0), text)
    text = MOBILE.sub(lambda m: m.group(1) + "****" + m.group(3), text)
    return LANDLINE.sub(lambda m: m.group(1) + (m.group(2) or "-") + "*" * len(m.group(3)) + m.group(4), text)


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return phone
    digits = re.sub(r"\D", "", phone)
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


@dataclass(frozen=True)
class View:
    text: str  # "full" or "masked": the appeal, its notes and replies
    caller: bool  # the caller's name and phone


VIEWS: dict[str, View] = {
    "admin": View("full", True),
    "intake": View("full", True),  # the tickets it created
    "unit": View("full", True),  # the tickets assigned to it
    "callback": View("masked", True),  # 回访 calls the citizen
    "reviewer": View("masked", False),
    "analyst": View("masked", False),
}
MASKED = View("masked", False)  # reports, hotspots, alerts, the ledger, exports
PAYLOAD_TEXT = ("text", "note", "reason", "comment")  # event payload fields that hold free text


def view_for(role: str) -> View:
    return VIEWS.get(role, MASKED)


def shown(text: str | None, view: View) -> str | None:
    return text if view.text == "full" else mask(text)


def shown_payload(payload: dict, view: View) -> dict:
    if view.text == "full":
        return payload
    return {k: mask(v) if k in PAYLOAD_TEXT and isinstance(v, str) else v for k, v in payload.items()}
