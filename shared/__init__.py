"""The common package every function bundle ships.

Ledger, schema profiles, settings, logging, errors, event decoding, clock.
"""
