"""Community & Relationships on the network: founding communities, and finding public ones by
zone (``docs/communities.md``). The rules are the community zome's (``ioe.zomes.community``)."""
