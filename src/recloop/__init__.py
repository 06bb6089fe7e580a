"""recloop: large models and reinforcement learning for recommendation, in one loop.

The top-level package stays light: importing it must not import torch, so that the
command line starts fast. Heavy parts are imported from their sub-packages.
"""

from recloop.errors import RecloopError

__version__ = "0.1.0"

__all__ = ["RecloopError", "__version__"]
