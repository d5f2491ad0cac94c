"""Pure domain: plans, batching, lifecycles and events.

Imports nothing from outer layers; does no I/O.
"""
