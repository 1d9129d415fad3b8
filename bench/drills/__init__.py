"""Failure drills on a three-broker Apache Kafka cluster (``bench/failure_drills.py``).

``wo run`` workers take bench/crash_test.py's workload while brokers are killed, stopped
and restarted; the crash test's audit then says whether anything was lost or duplicated.

- ``probes``: which node leads what, waiting for full ISRs, the consumer group's lag over time.
- ``faults``: the three drills' broker actions (leader kill, ISR loss, rolling restart).
- ``run``: one drill end to end (cluster, database, workers, load, fault, audit).
- ``report``: the figures of a drill and the table printed for one or more.
"""
