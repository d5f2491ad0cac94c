"""`python -m plait.cli ...`, the same as the `plait` console script."""

from plait.cli import main

raise SystemExit(main())
