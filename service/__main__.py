"""`python -m service` runs the tokenbroker command."""

from service.ops.cli import main

raise SystemExit(main())
