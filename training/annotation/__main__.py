"""``python -m training.annotation``: the annotators' tools (write batches, check a labels file)."""

from training.annotation.cli import main

raise SystemExit(main())
