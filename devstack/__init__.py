"""The local stack (emulators, functions, triggers, demo data) and developer tooling."""
