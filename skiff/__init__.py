"""Skiff's kernel: what every daemon and client imports, in three layers (each imports
only those below it):

- `skiff.api`: the objects (generated messages), the registry of kinds, and facts about
  objects (pods, conditions, selectors, quantities, defaulting, validation, conversion);
- `skiff.client`: talking to the apiserver (client, transport, informers, work queue,
  controller base, leader election, events, clock, back-off);
- `skiff.daemon`: what the daemons share (signals, leader election, client flags,
  serving and authentication).
"""
