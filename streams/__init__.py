"""Kafka wiring: the faust app, its topics and agents. Agents read, call a service, write.

Importing this package makes every aiokafka client in the process (ours and faust's) ask
the broker not to create a topic it asks about (streams/no_auto_create.py).
"""

from workorder_pipeline.streams import no_auto_create

no_auto_create.install()
