"""Allow ``python -m virnucpro``."""

from virnucpro.cli import main

raise SystemExit(main())
