"""Errors that reach a user: each names the file, the resource and what was expected."""

from __future__ import annotations


class GitopsError(Exception):
    exit_code = 1
