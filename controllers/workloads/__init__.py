"""The controllers that run pods for workloads, one per module: ``replicaset``,
``deployment`` (through ReplicaSets), ``daemonset``, ``job``, ``joborphans`` (releases
the pods of Jobs that are gone), ``cronjob`` (through Jobs) and ``ttlafterfinished``
(deletes finished Jobs)."""
