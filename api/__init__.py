"""The work-order HTTP API: read orders, send lifecycle commands. Wiring only, like streams/."""
