#!/usr/bin/env python
"""Run Openline's management commands."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openline.settings")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except Exception as exc:
        from openline.core.unavailable import MESSAGES, classify

        reason = classify(exc)
        if reason is None:
            raise
        # One clear line, not a stack of frames: the database (or Redis) is the problem.
        sys.stderr.write(f"{MESSAGES[reason]} ({type(exc).__name__}: {exc})\n")
        sys.exit(75)  # EX_TEMPFAIL: try again later
