"""The finance page in Airflow's web UI (issue #7): an Airflow plugin (``plugin.py``) mounting a FastAPI
app (``app.py``) behind Airflow's auth manager. Imported only by the api-server, never by a DAG or a
task."""
