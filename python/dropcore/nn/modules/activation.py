"""Re-export of :mod:`dropcore.nn.activation` under PyTorch's path ``nn.modules.activation``."""

from ..activation import *  # noqa: F401,F403
from ..activation import __all__  # noqa: F401
