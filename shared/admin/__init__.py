"""Operator actions (the ``credits-admin`` CLI): audited ledger corrections, engine costs,
promotions. Each action writes an ``admin_actions`` record in the same atomic unit as its
effect, so there is never an effect without its actor and reason, nor the reverse."""
