"""The scheduler daemon (``skiff-scheduler``): places pending pods on nodes, in the shape of
kube-scheduler.

* ``main``: the command line, leader election, the periodic report.
* ``scheduler``: the loop: informers in, one decision at a time, bindings (the binder,
  run as tasks), PodScheduled conditions and FailedScheduling events out.
* ``queue``: the scheduling queue of pending pods (active, back-off, unschedulable, in
  flight) and its timers.
* ``cache``: the nodes and what is booked on each, assumed bindings included.
* ``framework``: what plugins see (``PodInfo``, ``NodeInfo``), what a filter answers
  (``Status`` with kube-scheduler's codes) and the plugin protocols.
* ``events``: cluster events and which plugins each may help (EventsToRegister and
  queueing hints), which the queue consults to retry unschedulable pods.
* ``algorithm``: one decision: filter, score, pick.
* ``plugins``: the filter and score plugins, one per module, and their registry.
"""
