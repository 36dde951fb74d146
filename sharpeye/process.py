"""Commands that run one of SharpEye's own modules in a child Python process."""

from __future__ import annotations

import sys


def python_module(module: str, *args: str) -> list[str]:
    """``python -P -m module args``: ``-P`` keeps the working directory off ``sys.path``. Started from a checkout,
    the checkout's ``sharpeye/`` folder (the kernel alone: the stages live beside it) would otherwise shadow the
    installed package, and the child could not import ``sharpeye.ingest``."""
    return [sys.executable, "-P", "-m", module, *args]
