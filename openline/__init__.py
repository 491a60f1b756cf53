"""Openline: a self-hosted contact center that collects and proves consent."""
