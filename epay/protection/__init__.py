"""OpenPGP protection of exchange files (contract §8, version 002): sign + encrypt, decrypt + verify.

``epay.protection.openpgp`` is the one place that drives GnuPG (through python-gnupg); the operator's
hooks (``epay.protection.operator``) and the simulated post office (``epay.poste.protection``) use it.
"""
