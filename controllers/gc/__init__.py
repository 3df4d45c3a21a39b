"""Garbage collection by ownerReferences: ``garbagecollector`` deletes dependents whose
owners are gone, in the background, foreground or orphan mode the owner's deletion asked
for."""
