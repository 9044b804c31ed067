"""The operator side (cloud side) of fleet-agent: a typed client of the retained MQTT topics,
the in-memory fleet model it feeds, and the `fleet-agent` operator commands built on it.

The device agent never imports this package; it may import the agent's pure modules (wire types,
validation) so both sides decode the contract with the very same code.
"""
