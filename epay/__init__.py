"""epay: Algérie Télécom's automatic-debit batch pipeline with Algérie Poste."""

__version__ = "0.1.0"
