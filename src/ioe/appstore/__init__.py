"""The app store room: publishing, installing and paying for Smart Energy Apps, and running the
apps of this node's communities in their own networks (``docs/apps.md``)."""
