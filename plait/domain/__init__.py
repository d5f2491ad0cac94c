"""Pure domain: plans, batching, lifecycles and events. Imports nothing from outer layers; no I/O."""
