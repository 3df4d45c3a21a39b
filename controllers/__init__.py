"""The controller manager (`skiff-controller-manager`, entry point ``controllers.main``).

Every controller has the same shape (informer caches, a work queue of keys, an idempotent
``sync(key)``: see ``skiff.client.controller.Controller``) and lives in a module of its
own, grouped by what it looks after:

* ``controllers.workloads``: the controllers that run pods for a workload (ReplicaSet,
  Deployment, DaemonSet, Job and the release of its orphaned pods, CronJob, TTL after
  finished);
* ``controllers.nodes``: node health and taints, and the pods no node will finish;
* ``controllers.gc``: the garbage collector (dependents go with their owners);
* ``controllers.common``: what controllers share (the context they are built from,
  creating and owning pods, expectations, rollout arithmetic, cron schedules). A
  controller module imports only these shared helpers, never another controller's module.

A new controller goes in the subpackage of what it looks after and is registered in
``controllers.main.CONTROLLERS``.
"""
