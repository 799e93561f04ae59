"""Smart Energy Apps: each built only on the public zome API and pure rules of its own."""
