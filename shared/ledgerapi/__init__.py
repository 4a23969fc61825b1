"""ledger-api: the synchronous credit API for app backends (docs/ledger-api.md)."""
