"""Device drivers: one device language (``model``) over real protocols underneath.

A device is described as data (:class:`~ioe.drivers.model.DeviceDescription`: its type and a
table of telemetry and control points with canonical names, units and ranges). Every driver speaks
the same async interface (:class:`~ioe.drivers.base.Driver`): describe / read / write / revert.
"""
