"""Who may do what through the Docker API: rules on requests rather than on containers.

``api`` holds the request rules (``api_rules:``) and the user groups (``groups:``) they
name: parsing with file:line errors, and matching, as pure functions on plain data. The
authorization plugin (``covenant/authz/rules.py``) looks up what a rule needs -- the name
of the container a path refers to -- and hands it in.
"""

from .api import ApiCall, ApiRule, Denial, judge, lookups_needed, parse_groups, parse_rules, rename_escape

__all__ = ["ApiCall", "ApiRule", "Denial", "judge", "lookups_needed", "parse_groups", "parse_rules",
           "rename_escape"]
