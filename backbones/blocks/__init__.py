"""Model building blocks: the user-item graph and sparse matrices, boolean CSR helpers,
negative sampling and losses. May import ``harness.core`` only."""
