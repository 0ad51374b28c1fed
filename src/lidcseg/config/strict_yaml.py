"""Config files read strictly: plain YAML (or JSON) holding plain values, nothing else.

Three things a YAML reader takes silently are refused here, naming the file:

- a key given twice in one mapping: YAML libraries keep the last one, so the value a reader
  sees is not the one they meant (and an edit to the first has no effect);
- an alias (``*name``, also behind a ``<<:`` merge key): nine lines of nested aliases
  ("billion laughs") stand for 10^9 values, which every later step (validation, the JSON a
  job is handed) expands in memory; a config needs none, so the first alias stops the read,
  before anything is built;
- a number that is not finite (``.nan``, ``.inf``) or an integer outside 64 bits: no config
  key means one, and each would pass a range check (every comparison with NaN is false) and
  fail a job hours later. :func:`refuse_unbounded` is the one rule, applied to every mapping
  validated (a file, the inline ``--settings`` JSON, or Snakemake's merged config).

This module is the one place lidcseg reads config YAML; the workflow checks its config files
with it (workflow/rules/common.smk) before Snakemake plans a job.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

from lidcseg.errors import ConfigError

# numpy and torch hold integers in 64 bits; a config integer beyond is no value any key means
INT_RANGE = (-(2**63), 2**63 - 1)


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that stops at the first alias."""

    where = "<config>"

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                self.where,
                f"line {event.start_mark.line + 1}: YAML alias '*{event.anchor}' refused (a "
                "config holds plain values; aliases can expand to gigabytes): write the value out",
            )
        return super().compose_node(parent, index)


def parse(text: str, where: str):
    """The value of YAML (or JSON) ``text`` read from ``where`` (a file, or a phrase naming
    inline text); an alias, a duplicate key or a syntax error is refused naming ``where``."""
    loader = _StrictLoader(text)
    loader.where = where
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicates(node, (), where)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(where, f"not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise ConfigError(where, "nested too deeply to be a config") from None
    finally:
        loader.dispose()


def check_file(path: str | os.PathLike) -> None:
    """Read config file ``path`` strictly and check its numbers: what the workflow calls on
    each file Snakemake loaded (its own reader takes duplicates and aliases silently)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(
            str(path), f"cannot read the config file ({exc.strerror or exc})"
        ) from None
    refuse_unbounded(parse(text, str(path)), ())


def _refuse_duplicates(node, path: tuple[str, ...], where: str) -> None:
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicates(item, (*path, str(i)), where)
    elif isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if name in seen:
                raise ConfigError(
                    ".".join((*path, name)),
                    f"given twice in {where} (lines {seen[name]} and {line}); YAML would keep "
                    "the last silently: keep one",
                )
            seen[name] = line
            _refuse_duplicates(value_node, (*path, name), where)


def refuse_unbounded(data, path: tuple[str, ...]) -> None:
    """Raise ConfigError naming the key of the first number in ``data`` that is not finite,
    or of the first integer outside 64 bits (:data:`INT_RANGE`)."""
    if isinstance(data, dict):
        for key, value in data.items():
            refuse_unbounded(value, (*path, str(key)))
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            refuse_unbounded(value, (*path, str(i)))
    elif isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(".".join(path) or "<top level>", f"{data} is not a finite number")
    elif isinstance(data, int) and not INT_RANGE[0] <= data <= INT_RANGE[1]:
        raise ConfigError(
            ".".join(path) or "<top level>", f"{data} is out of range (64-bit integers)"
        )
