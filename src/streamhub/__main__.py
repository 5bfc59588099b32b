"""``python -m streamhub``."""

from streamhub.cli import main

raise SystemExit(main())
