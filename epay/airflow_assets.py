"""The assets the epay DAGs hand to each other, so Airflow's UI shows the flow between them."""

from __future__ import annotations

from airflow.sdk import Asset

# PRLV files delivered to Algérie Poste (its /inbound/ folder): produced by epay_debit_outbound's send
POSTE_INBOUND = Asset(name="algerie_poste_inbound", uri="sftp://algerie-poste/inbound")
# Returns applied to the ledger (ACK, RETR, MNDT, RELV): produced by epay_inbound
LEDGER_RETURNS = Asset(name="epay_ledger_returns", uri="epay://ledger/returns")
