"""What every config key means, read from the comments of `config_defaults`.

The comments beside and above each `c.<section>.<key> = ...` line of
`config_defaults.base_config()` are the config's documentation; this module
parses them so that `purl-config` can print a config with every key, its
value, its default and its meaning, and so that a test can require every key
to have one. A comment belongs to a key when it ends the key's line (and
comment-only lines aligned under it continue it) or stands directly above the
line with no blank line between; a comment above `c.<section> =
ml_collections.ConfigDict()` describes the section.
"""

import inspect
import re
import textwrap
from typing import Dict, Tuple

import ml_collections

from purl_tf import config_defaults

_ASSIGN = re.compile(r'^(\s*)c\.([\w.]+)\s*=\s*(.*?)\s*(#\s?(.*))?$')
_COMMENT = re.compile(r'^(\s*)#\s?(.*)$')


def meanings(source: str = '') -> Tuple[Dict[str, str], Dict[str, str]]:
  """Parses `base_config`'s source (or `source`).

  Returns:
    `(keys, sections)`: dotted key -> meaning, section -> meaning; a key or
    section without a comment maps to ''.
  """
  source = source or inspect.getsource(config_defaults.base_config)
  keys, sections = {}, {}
  pending = []          # block comment lines above the next assignment
  last_key, last_col = None, -1  # for aligned continuation comments
  for line in source.splitlines():
    assign = _ASSIGN.match(line)
    comment = _COMMENT.match(line)
    if assign:
      name, value, trailing = assign.group(2), assign.group(3), assign.group(5)
      text = ' '.join(pending + ([trailing] if trailing else []))
      pending = []
      if value.startswith('ml_collections.ConfigDict('):
        sections[name] = text
        last_key = None
      else:
        keys[name] = text
        last_key = name if trailing else None
        last_col = line.index('#') if trailing else -1
    elif comment and last_key and len(comment.group(1)) == last_col:
      keys[last_key] += ' ' + comment.group(2)
    elif comment:
      pending.append(comment.group(2))
      last_key = None
    else:
      pending, last_key = [], None
  return keys, sections


def _flatten(config, prefix=''):
  for name, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _flatten(value, f'{prefix}{name}.')
    else:
      yield f'{prefix}{name}', value


def describe(config: ml_collections.ConfigDict, width: int = 79) -> str:
  """Every key of `config`: its value, its default when different, its meaning.

  Args:
    config: a purl_tf config (overrides applied).
    width: the line width meanings are wrapped to.

  Returns:
    The text, one block per section, in the config's order.
  """
  keys, sections = meanings()
  defaults = dict(_flatten(config_defaults.base_config()))
  # In the order base_config declares them (ConfigDict sorts its keys).
  order = {k: i for i, k in enumerate(keys)}
  section_order = {s: i for i, s in enumerate(sections)}
  items = sorted(_flatten(config), key=lambda kv: (
      section_order.get(kv[0].split('.')[0], -1) if '.' in kv[0] else -1,
      order.get(kv[0], len(order)), kv[0]))
  lines, section = [], None
  for key, value in items:
    head = key.split('.')[0] if '.' in key else ''
    if head != section:
      section = head
      title = f'[{head}] {sections.get(head, "")}' if head else '[top level]'
      lines += [''] + textwrap.wrap(title, width, initial_indent='# ',
                                    subsequent_indent='#   ')
    entry = f'{key} = {value!r}'
    if key in defaults and defaults[key] != value:
      entry += f'   (default {defaults[key]!r})'
    lines.append(entry)
    lines += textwrap.wrap(keys.get(key) or '(no description)', width,
                           initial_indent='    ', subsequent_indent='    ')
  return '\n'.join(lines).lstrip('\n') + '\n'
