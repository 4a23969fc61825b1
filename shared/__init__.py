"""The common package every function bundle ships: ledger, profiles, settings, logging, errors, events, clock."""
