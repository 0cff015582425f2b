"""``dropcore.nn.functional``: the functional forms (``import dropcore.nn.functional as F``)."""

from ..functional import *  # noqa: F401,F403
from ..functional import __all__  # noqa: F401
