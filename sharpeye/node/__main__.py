"""``python -m sharpeye.node``: the same command line as ``sharpeye``."""

from sharpeye.node.cli import main

raise SystemExit(main())
