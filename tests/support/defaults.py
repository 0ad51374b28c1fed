"""The embedded default's typed sections (config.yaml), for tests that call a stage's functions.

The package restates no config value as a default; a test takes the default from here, and
``dataclasses.replace`` changes the one value it is about.
"""

from __future__ import annotations

import json

from lidcseg import config
from lidcseg.data.sources.route import Route
from tests.support.paths import REPO

DEFAULTS = config.load(REPO / "config.yaml")
DIRECT = Route(
    proxy=None, ca_bundle=None
)  # loopback servers: never through the environment's proxy


def settings_json(**sections) -> str:
    """``--settings`` for a command: the default's sections named,
    each updated with the given keys."""
    data = config.load_sections(str(REPO / "config.yaml"), tuple(sections))
    return json.dumps({name: {**data[name], **changes} for name, changes in sections.items()})
