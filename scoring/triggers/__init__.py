"""Trigger rules: conditions over scoring/churn features, cooldowns, caps, holdouts, episodes."""
