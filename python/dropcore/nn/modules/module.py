"""Re-export of :mod:`dropcore.nn.module` under PyTorch's path ``nn.modules.module``."""

from ..module import *  # noqa: F401,F403
from ..module import __all__  # noqa: F401
