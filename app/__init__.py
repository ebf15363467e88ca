"""The Streamlit app: a thin shell over the ``recommender`` library (run it with ``recommender app``)."""
