"""Identity & Discovery on the network: enrollment, ownership transfer, key rotation and
revocation, owner recovery, enterprise keysets, reputation and the directory.

The pure rules these services apply are the modules beside this package (``ioe.identity``);
the services reach their node only through :class:`ioe.identity.service.host.IdentityHost`."""
