"""The objects and the facts about them, as Kubernetes defines them: generated messages
(`v1`), the registry of kinds (`kinds`), typed metadata (`meta`), pods (`pods`),
conditions, IntOrString values, selectors, quantities, scheduling rules, defaulting,
validation and the conversion of manifests (`convert`, `jsonform`)."""
