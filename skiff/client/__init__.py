"""Everything a Skiff component needs to talk to the apiserver, on the Kubernetes model.

* ``client``: the async typed gRPC client (get/list/watch/create/update/delete).
* ``transport``: the one way to open a channel to a server, with ClientCredentials.
* ``informer``: list + watch into an indexed local cache, with event handlers;
  ``SharedInformerFactory`` shares one informer per selection between controllers.
* ``workqueue`` and ``controller``: de-duplicated keys, retries with backoff, and the
  ``Controller`` base every controller uses (level-triggered ``sync(key)``).
* ``leaderelection``: one active instance per Lease, standbys take over.
* ``events``: Events about objects, repeats folded into one object with a count.
* ``clock``: injectable time, so tests of timeouts and backoff do not sleep, and
  ``sleep_or_wake``, the one wait for a timer or an event.
* ``backoff``: the one exponential back-off (``Backoff`` per key, ``exponential_delay``).
* ``retry``: read-modify-write with retries on conflicts.
"""
