"""citytwin core: the H3-indexed city information model and its workspace store.

``twin`` imports none of ``ingest``, ``layers`` or ``dashboards``; its command-line module
(:mod:`twin.cli`) is the one place that composes them.
"""

from twin.config import Config, default_config, load_config
from twin.errors import TwinError, TwinWarning
from twin.schema import KINDS, get_kind
from twin.store import LayerInfo, LayerVersion, Workspace

__all__ = [
    "KINDS",
    "Config",
    "LayerInfo",
    "LayerVersion",
    "TwinError",
    "TwinWarning",
    "Workspace",
    "default_config",
    "get_kind",
    "load_config",
]
__version__ = "0.1.0"
