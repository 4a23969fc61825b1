"""Usage metering: usage events into cost, revenue and profit, credits, daily and monthly usage.

``model`` validates the ``usage-events`` message, ``pricing`` is the pure money arithmetic,
``config`` reads the pricing and limits configuration, ``service`` meters one message in one
atomic unit, ``limits`` answers the usage-limits check and ``scenarios`` keeps Kaiwa's
``scenarioMetadata`` aggregates. See docs/usage.md.
"""
