"""`python -m service` runs the tokenbroker command."""

from service.cli import main

raise SystemExit(main())
