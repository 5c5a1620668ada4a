"""``python -m rnnlab ...`` (and ``torchrun ... -m rnnlab train TASK ...``) is the ``rnnlab`` command."""

import os
import sys

if os.environ.get("RANK", "0") not in ("", "0"):
    # Under torchrun, rank 0 alone speaks: the others' C++ warnings (read when torch loads) are silenced.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")

from .cli import main  # noqa: E402

sys.exit(main())
