"""The pure scoring domain: events, per-user state, scores, windows, churn, triggers.

Never imports faust, aiokafka or kafka: the Faust agents, `engage replay`, the tests and the
benchmarks all drive this same engine, so offline and live give the same answer.
"""
