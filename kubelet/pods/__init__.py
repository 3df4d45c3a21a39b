"""The pods bound to this node, run through one path: plan, then carry out the plan.

- syncer.py: `PodSyncer`, the sync loop: its inputs (pods, objects, relists) and one
  pod's sync, which plans (kubelet/plan.py) and has the plan carried out.
- workers.py: one serialized worker per pod, woken by the inputs and by time.
- runtime_cache.py: the runtime's containers as last listed (the PLEG and its cache).
- executor.py: carries out a plan, to start a pod or to stop it.
- configs.py: the sandbox and container configurations the runtime is given.
- status_writer.py: writes the pod's status when it changed.
- references.py: which pods use which Secrets and ConfigMaps.
"""
