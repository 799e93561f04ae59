"""The mutual-credit energy currency (being built): the value of a kWh and zone rules so far."""
