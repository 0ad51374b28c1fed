"""One block per file; importing this package registers all of them.

Every module of this folder is imported, so a new block is one new file (registered with
``@register_block``) and nothing else to edit.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
