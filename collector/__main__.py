"""Entry point for `python -m collector`."""

from collector.entry import main

raise SystemExit(main())
