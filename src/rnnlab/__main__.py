"""``python -m rnnlab ...`` (and ``torchrun ... -m rnnlab train TASK ...``) is the ``rnnlab`` command."""

import sys

from .cli import main

sys.exit(main())
