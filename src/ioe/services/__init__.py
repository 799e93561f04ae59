"""Per-cell services on the network: remote calls and signals, countersigning sessions,
fetching what a call cites, capability grants opened to every member, the bridged device and
its telemetry recorder, and what every room's HTTP routes share."""
