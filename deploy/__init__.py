"""Running epay on a production-shaped Airflow: ``python -m deploy.stack up|down|status`` (``make stack``)."""
