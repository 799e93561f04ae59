"""Identity & Discovery, the pure core (DESIGN §6.1; docs/identity.md).

Owner keysets (:mod:`.authority`), enrollment certificates and the membrane rule
(:mod:`.certificate`), key revocation and rotation (:mod:`.revocation`), ownership transfer
(:mod:`.transfer`), pairing codes (:mod:`.pairing`) and reputation (:mod:`.reputation`).
Nothing here does I/O or reads a clock: time is passed in.
"""
