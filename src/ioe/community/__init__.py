"""Community & Relationships on the network: founding communities, finding public ones by zone,
memberships within an owner and between owners (invitations, joins over
``/ioe/community-join/1``, roles) (``docs/communities.md``). The rules are the community zome's
(``ioe.zomes.community``)."""
