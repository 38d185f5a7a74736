"""``python -m gaussnewton`` — same as the ``gaussnewton`` console script (:func:`gaussnewton_paper.cli.main`)."""

from gaussnewton_paper.cli import main

raise SystemExit(main())
