"""Fixtures shared by the driver tests: a real mosquitto broker per test (``mosquitto``)."""

from ioe.testing.mosquitto import mosquitto_fixture

mosquitto = mosquitto_fixture()
