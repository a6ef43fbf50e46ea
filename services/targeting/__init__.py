"""Targeting for people: a flag's rules, conditions and rollouts in words (``sentences``), the same for the UI's
columns, the CLI and the audit log."""

from .sentences import clause_text, configuration_lines, percent, rule_text, serve_text, summary

__all__ = ["clause_text", "configuration_lines", "percent", "rule_text", "serve_text", "summary"]
