"""Profit and usage analytics: write-time counters and the scheduled rollups."""
