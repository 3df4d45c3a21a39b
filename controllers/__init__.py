"""The controller manager: one module per controller, all of the same shape (informer
caches, a work queue of keys, an idempotent ``sync(key)``: see
``skiff.client.controller.Controller``), plus the helpers they share."""
