"""Ed25519 through PyNaCl and key files."""
