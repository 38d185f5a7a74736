"""``python -m gaussnewton`` — same as the ``gaussnewton`` console script."""

from .cli import main

raise SystemExit(main())
