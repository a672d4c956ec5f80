"""The one error the taxonomy raises: it names the file, the key inside it, and the reason."""

from __future__ import annotations

from pathlib import Path


class TaxonomyError(ValueError):
    """A taxonomy file is missing, malformed or inconsistent.

    ``file`` is the path that was read, ``key`` a dotted path inside it (``categories[3].children[1].owner``)
    and ``reason`` a sentence a person can act on.
    """

    def __init__(self, file: str | Path | None, key: str | None, reason: str):
        self.file = str(file) if file is not None else None
        self.key = key
        self.reason = reason
        where = self.file or "<taxonomy>"
        if key:
            where = f"{where}: {key}"
        super().__init__(f"{where}: {reason}")
