"""Targeting for people: a flag's rules, conditions and rollouts in words (``sentences``), what a change did to a
flag in words (``changes``), and typed as words by the CLI and printed back the same way (``grammar``); the
same for the UI's columns, the CLI and the audit log."""

from .changes import flag_change_lines, serve_change
from .grammar import (
    GrammarError,
    format_condition,
    format_rollout,
    parse_condition,
    parse_rollout,
    quote,
    serve_options,
)
from .sentences import clause_text, configuration_lines, percent, rule_text, serve_text, summary

__all__ = [
    "GrammarError",
    "clause_text",
    "configuration_lines",
    "flag_change_lines",
    "format_condition",
    "format_rollout",
    "parse_condition",
    "parse_rollout",
    "percent",
    "quote",
    "rule_text",
    "serve_change",
    "serve_options",
    "serve_text",
    "summary",
]
