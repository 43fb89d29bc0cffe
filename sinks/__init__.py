"""Where results go: Kafka publishers, webhooks, metrics, files."""
