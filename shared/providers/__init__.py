"""Model-provider operations: health, circuit breakers, quotas, alerts and routing.

``core`` and ``quotas`` are pure rules over values; ``service`` applies them to Firestore in
optimistic atomic units; ``routing`` is the helper the app's workers import to choose a model.
"""
