"""Re-export of :mod:`dropcore.nn.linear` under PyTorch's path ``nn.modules.linear``."""

from ..linear import *  # noqa: F401,F403
from ..linear import __all__  # noqa: F401
