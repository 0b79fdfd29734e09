"""What the ledger says about a day: status now; settlement summaries and reconciliation later (#7)."""
