"""App networks: the membrane every app DNA shares (members of the enrolled community only)
and the zomes app DNAs are made of (``docs/apps.md``)."""
