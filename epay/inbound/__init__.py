"""What Algérie Poste sends back, applied to the ledger: one transaction per file, exactly once."""
