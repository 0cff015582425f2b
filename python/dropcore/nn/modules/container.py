"""Re-export of :mod:`dropcore.nn.container` under PyTorch's path ``nn.modules.container``."""

from ..container import *  # noqa: F401,F403
from ..container import __all__  # noqa: F401
