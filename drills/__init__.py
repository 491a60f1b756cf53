"""Failure drills: kill processes and services under load and check what Openline promises.

``python -m drills [names] [--quick]`` (``make drills``) runs every ``drills/drill_<name>.py``;
``drills.harness`` starts the private PostgreSQL, Redis and Openline processes they kill.
"""
