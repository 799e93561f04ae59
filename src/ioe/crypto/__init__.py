"""Keys, signatures, seed derivation and the keystore, all through libsodium (PyNaCl)."""
