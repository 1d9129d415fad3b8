"""Kafka wiring: the faust app, its topics and agents. Agents read, call a service, write."""
