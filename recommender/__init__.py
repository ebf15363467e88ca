"""recommender: measure, learn and recommend how to fine-tune a language model for a task.

Heavy libraries (torch, transformers, adapters) load lazily, when a function needs them.
"""

import os as _os

# OpenMP threads that spin while waiting make a CPU shared with another process (a second
# worker, a test, a browser) several times slower; sleeping waiters cost little when alone.
# Set before torch is first imported; an explicit user setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
