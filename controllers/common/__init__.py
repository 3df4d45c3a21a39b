"""What the controllers share; no controller lives here.

* ``context``: ``ControllerContext``, what every controller is built from (client,
  shared informers, event recorders, clock);
* ``podcontrol``: creating and deleting owned pods with events and slow-start batches;
* ``expectations``: what a controller has asked for and not yet seen in its cache;
* ``claim``: adopting and releasing objects by selector (ownerReferences);
* ``podowners``: pod events for controllers that own pods through a selector;
* ``replicas``: when a pod counts as available, and which pods to remove first;
* ``jobs``: Job facts the Job, orphan-pod and CronJob controllers share (the
  job-tracking finalizer, whether a Job has finished);
* ``rollout``: the I/O-free arithmetic of Deployment rollouts;
* ``cron``: cron schedules, as the CronJob controller reads them.
"""
