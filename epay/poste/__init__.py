"""The simulated Algérie Poste: SFTP server, its own state and database, processing, a controllable clock.

It shares only ``epay.formats`` (the contract) with the operator's side: two organisations, two
databases, one file format.
"""
